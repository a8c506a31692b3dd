"""The documentation site, built from the notebooks and read in a real browser (Debian's headless Chromium through Playwright).

Every page is opened at desktop (1440 px) and phone (375 px) width, as a reader would, and the test fails on:
a console error or failed request, a broken image, an internal link or anchor that does not resolve, raw TeX
left visible or a MathJax error, a text column narrower than 300 px on a phone, content wider than its column,
a page without a search box, a page with sections but no table of contents, an API entry without a docstring. Screenshots of every page at both widths land in SHOTS; the numbers it measured
(pages, links, images, math) are printed and written to SHOTS/report.json.
"""
import configparser, http.server, json, os, re, shutil, subprocess, sys, threading, time
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse
import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build/docs"
SHOTS = ROOT / "build" / "site-screenshots"
CHROMIUM = os.environ.get("SPURNB_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
_ini = configparser.ConfigParser(delimiters=["="]); _ini.read(ROOT / "settings.ini")
REPO = _ini["DEFAULT"]["git_url"].rstrip("/")
DEPLOYED = _ini["DEFAULT"]["doc_host"].rstrip("/") + _ini["DEFAULT"]["doc_baseurl"].rstrip("/") + "/"
RAW_TEX = re.compile(r"\$\$|\\(?:frac|mathbb|mathcal|mathrm|text|sum|left|right|cdot|lambda|tau|exp|log|operatorname|hat|top|mid|in|le|ge)\b|\$[^$\n]{1,80}\$")
MACHINE_NOISE = re.compile(r"/tmp/|/work/|/home/|Warning:")   # as tests/test_project.py checks the notebooks' saved outputs
NOISE_PENDING = set()  # pages whose notebooks are in tests/test_project.py's NOISE_PENDING

_SPILL_JS = """function _spill(art) {   // elements that stick out of the text column, other than inside a scrolling box
  const R = art.getBoundingClientRect(), out = [];   // Furo lets headings and table frames reach .5rem (8 px) out, by design
  for (const e of art.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.right <= R.right + 8.5 || r.width === 0) continue;
    let p = e.parentElement, clipped = false;
    while (p && p !== art) { if (getComputedStyle(p).overflowX !== 'visible') { clipped = true; break; } p = p.parentElement; }
    if (!clipped) out.push(e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ')[0] : '') + ' by ' + Math.round(r.right - R.right) + ' px');
  }
  return out.slice(0, 3);
}"""

_PAGE_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const art = document.querySelector('article[role=main]') || document.querySelector('article');
  const clone = art.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, mjx-container, script, style').forEach(e => e.remove());
  const imgs = await Promise.all([...document.images].map(i => { const im = new Image(); im.src = i.currentSrc || i.src;
      return im.decode().then(() => [i.src, im.naturalWidth]).catch(() => [i.src, 0]); }));
  const search = document.querySelector('input[name=q]');
  return {
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    favicon: (document.querySelector('link[rel~=icon]') || {}).href || null,
    ids: [...document.querySelectorAll('[id]')].map(e => e.id).concat([...document.querySelectorAll('a[name]')].map(e => e.name)),
    images: imgs,
    math: document.querySelectorAll('mjx-container').length,
    math_errors: [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent),
    text: clone.innerText,
    no_doc: [...art.querySelectorAll('section')].filter(s => [...s.children].some(c => c.tagName === 'P' && /^Call self as a function/.test(c.innerText.trim())))
                .map(s => (s.querySelector('h1,h2,h3,h4,h5,h6') || {}).innerText),
    search: !!search && search.getBoundingClientRect().width > 0,
    sections: art.querySelectorAll('section section').length,
    toc: [...document.querySelectorAll('.toc-tree a')].filter(a => a.getBoundingClientRect().width > 0).length,
    column: art.getBoundingClientRect().width,
    spill: _spill(art),
    page_scroll: document.documentElement.scrollWidth - window.innerWidth,
  };
}"""

_PHONE_JS = """() => { const art = document.querySelector('article[role=main]') || document.querySelector('article');
  return {column: art.getBoundingClientRect().width, page_scroll: document.documentElement.scrollWidth - window.innerWidth,
          spill: _spill(art)}; }"""


@pytest.fixture(scope="module")
def site():
    "Build the site from the notebooks (what `make docs` does) and serve it on 127.0.0.1."
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's browser with `apt-get install -y chromium` (`make setup` does it when run as root), or set SPURNB_CHROMIUM")
    t0 = time.time()
    if not os.environ.get("SPURNB_SITE_BUILT"):          # set it only to re-check a site you just built with `make docs`
        subprocess.run([sys.executable, str(ROOT / "tools/docs.py"), "--out", "build/docs"], cwd=ROOT, check=True)
    build_s = time.time() - t0
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    # served under the deployed site's path (/spurnb/), so a link that only works from the server's root fails here too
    root = ROOT / "build" / "site-root"; shutil.rmtree(root, ignore_errors=True); root.mkdir(parents=True)
    sub = urlparse(DEPLOYED).path.strip("/") or "site"
    (root / sub).symlink_to(SITE, target_is_directory=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/{sub}/", build_s
    srv.shutdown()


def _pages():
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if not p.relative_to(SITE).parts[0].startswith("_"))


def test_site_in_browser(site, capsys):
    from playwright.sync_api import sync_playwright
    base, build_s = site
    shutil.rmtree(SHOTS, ignore_errors=True)
    (SHOTS / "desktop").mkdir(parents=True); (SHOTS / "phone").mkdir(parents=True)
    pages, problems, seen, t0 = _pages(), [], {}, time.time()
    assert "index.html" in pages and "losses.html" in pages, f"the site in {SITE} lacks index.html or losses.html: {pages}"
    n_links = n_images = n_math = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
        for name in pages:
            errors.clear()
            page.set_viewport_size({"width": 1440, "height": 900})
            page.goto(base + name, wait_until="load")
            page.add_script_tag(content=_SPILL_JS)
            info = page.evaluate(_PAGE_JS)
            page.screenshot(path=SHOTS / "desktop" / (name.replace("/", "__")[:-5] + ".png"))
            page.set_viewport_size({"width": 375, "height": 800})
            phone = page.evaluate(_PHONE_JS)
            page.screenshot(path=SHOTS / "phone" / (name.replace("/", "__")[:-5] + ".png"))
            seen[name] = set(info["ids"])
            problems += [f"{name}: {e}" for e in errors]
            bad = [src for src, w in info["images"] if not w]
            problems += [f"{name}: broken image {src}" for src in bad]
            n_images += len(info["images"])
            n_math += info["math"]
            problems += [f"{name}: MathJax error: {e}" for e in info["math_errors"]]
            tex = sorted({m.group(0) for m in RAW_TEX.finditer(info["text"])})
            if tex: problems.append(f"{name}: raw TeX visible: {tex[:8]}")
            problems += [f"{name}: {h.rstrip('¶').strip()} reads 'Call self as a function.': give it a docstring of its own in its notebook" for h in info["no_doc"]]
            noise = sorted({m.group(0) for m in MACHINE_NOISE.finditer(info["text"])})
            if noise and name not in NOISE_PENDING: problems.append(f"{name}: machine paths or warnings in the page ({noise}): fix the source, re-execute the notebook")
            if not info["favicon"]: problems.append(f"{name}: no favicon (link rel=icon)")
            elif not info["favicon"].startswith(base): problems.append(f"{name}: favicon {info['favicon']} is not served by the site")
            if not any(h.rstrip("/") == REPO for h in info["links"]): problems.append(f"{name}: no link to the repository {REPO}")
            if not info["search"]: problems.append(f"{name}: no visible search box (input[name=q])")
            if info["sections"] >= 2 and info["toc"] < 2: problems.append(f"{name}: {info['sections']} sections but no visible table of contents (.toc-tree) at 1440 px")
            if info["spill"] or info["page_scroll"] > 1: problems.append(f"{name}: content wider than the text column at 1440 px: {info['spill']}, page scrolls sideways by {info['page_scroll']} px")
            if phone["column"] < 300: problems.append(f"{name}: text column {phone['column']:.0f} px wide at 375 px (needs >= 300)")
            if phone["page_scroll"] > 1 or phone["spill"]: problems.append(f"{name}: at 375 px the page scrolls sideways by {phone['page_scroll']} px; sticking out of the column: {phone['spill']}")
            seen[name + "#links"] = info["links"] + ([info["favicon"]] if info["favicon"] else [])
        # every internal link and anchor, checked against the pages as the browser saw them
        for name in pages:
            for href in seen.pop(name + "#links"):
                url = DEPLOYED + href[len(DEPLOYED):] if href.startswith(DEPLOYED) else href
                if url.startswith(DEPLOYED): url = base + url[len(DEPLOYED):]
                origin = base[:base.index("/", len("http://"))]
                if url.startswith(origin) and not url.startswith(base):
                    problems.append(f"{name}: link to {href} leaves the site's folder (works only from a server's root)"); continue
                if not url.startswith(base): continue
                n_links += 1
                path, frag = urldefrag(url)
                rel = unquote(urlparse(path).path)[len(urlparse(base).path):] or "index.html"
                if rel.endswith("/"): rel += "index.html"
                if not (SITE / rel).is_file(): problems.append(f"{name}: link to {href}: no file {rel} in the site"); continue
                if frag and rel.endswith(".html") and rel in seen and unquote(frag) not in seen[rel]:
                    problems.append(f"{name}: link to {href}: {rel} has no anchor #{unquote(frag)}")
        # the losses page: an API entry with its parameter table, and a figure, visible to a reader
        page.set_viewport_size({"width": 1440, "height": 900})
        page.goto(base + "losses.html#multimodal_loss", wait_until="load")
        entry = page.evaluate("""() => { const a = document.getElementById('multimodal_loss'); if (!a) return null;
            let sec = (a.closest('p') || a).nextElementSibling;
            if (!sec || sec.tagName !== 'SECTION' || !/multimodal_loss/.test(sec.querySelector('h3').innerText)) return {table: false, next: sec && sec.outerHTML.slice(0, 80)};
            const t = sec && sec.querySelector('table'); if (!t) return {table: false};
            t.scrollIntoView({behavior: 'instant', block: 'start'}); const r = t.getBoundingClientRect(), st = getComputedStyle(t);
            return {table: true, head: t.rows[0].innerText, rect: [r.left, r.top, r.width, r.height], display: st.display, visibility: st.visibility,
                    visible: st.visibility === 'visible' && r.width > 200 && r.height > 20 && r.top < innerHeight && r.bottom > 0}; }""")
        if not entry: problems.append("losses.html: no anchor #multimodal_loss (nbdev's anchor of spurnb.losses.multimodal_loss)")
        elif not (entry["table"] and entry["visible"] and "Details" in entry["head"]): problems.append(f"losses.html: multimodal_loss's parameter table is not visible: {entry}")
        fig = page.evaluate("""() => { const im = [...document.querySelectorAll('article img')].find(i => i.naturalWidth > 100); if (!im) return null;
            im.scrollIntoView({behavior: 'instant', block: 'center'}); const r = im.getBoundingClientRect(); return {src: im.src, w: r.width, visible: r.width > 200 && r.top < innerHeight && r.bottom > 0}; }""")
        if not (fig and fig["visible"]): problems.append(f"losses.html: no figure (an <img> over 100 px wide in the article) a reader can see: {fig}")
        page.screenshot(path=SHOTS / "desktop" / "losses_figure.png")
        # the CLI page: every command's parameter table gives each option a type (a `Param` option once showed its help as the type)
        page.goto(base + "cli.html", wait_until="load")
        for cmd in ("spurnb_train", "spurnb_detect", "spurnb_benchmark", "spurnb_results"):
            rows = page.evaluate("""(id) => { if (!document.getElementById(id)) return null;
                const sec = [...document.querySelectorAll('section')].find(s => { const h = s.querySelector(':scope > h3');
                    return h && h.innerText.replace('¶', '').trim() === id; });
                const t = sec && sec.querySelector('table'); if (!t) return [];
                return [...t.rows].slice(1).map(r => [...r.cells].map(c => c.innerText.trim())); }""", cmd)
            if rows is None: problems.append(f"cli.html: no anchor #{cmd}"); continue
            if not rows: problems.append(f"cli.html: {cmd} has no parameter table")
            untyped = [r[0] for r in rows if len(r) < 4 or not r[1]]
            if untyped: problems.append(f"cli.html: {cmd}'s parameters without a type: {untyped}")
            undocumented = [r[0] for r in rows if len(r) >= 4 and not r[3]]
            if undocumented: problems.append(f"cli.html: {cmd}'s parameters without help: {undocumented}")
        # search works offline: the index loads and finds an API name
        page.goto(base + "search.html?q=GroupDataset", wait_until="load")
        page.wait_for_selector("#search-results ul.search li", timeout=20_000)
        hits = page.locator("#search-results ul.search li").count()
        browser.close()
    report = {"pages": len(pages), "internal_links_checked": n_links, "images": n_images, "math_rendered": n_math,
              "search_hits_GroupDataset": hits, "build_s": round(build_s, 1), "browser_s": round(time.time() - t0, 1), "screenshots": str(SHOTS)}
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1))
    with capsys.disabled(): print(f"\ntests/test_site.py measured: {json.dumps(report)}")
    assert not problems, f"{len(problems)} problems on the site (screenshots in {SHOTS}):\n" + "\n".join(problems[:60])
    assert hits > 0, "the search page found nothing for 'GroupDataset'"
