"""Opening the served dashboard in a test: one helper for every browser test file."""
import re

WAIT = 120_000  # ms: every wait is on a state, bounded generously for a busy 2-core machine (a CPU-bound job beside)


def open_dashboard(browser, url, page_errors, width=1280, height=720, timeout=WAIT, trace=True):
    """A new page at `url`, whole: (page, its console errors). The first screen is drawn first (the PE
    array and the line above it); then come the sidebar, the timeline and plot tabs, and (`trace`) the
    GEMM's cycles on the array, whose caption then counts them."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = page_errors(page)
    page.goto(url)
    page.locator(".chipviz-op-info").first.wait_for(timeout=timeout)
    page.locator(".cv-canvas").first.wait_for(timeout=timeout)
    page.locator(".chipviz-cost").first.wait_for(state="attached", timeout=timeout)
    if trace:
        page.locator(".cv-caption", has_text=CYCLE_SHOWN).first.wait_for(timeout=timeout)
    return page, errors


CYCLE_SHOWN = re.compile(r"cycle [\d,]+ of|周期 *[\d,]+ */")  # the PE array's caption, once it plays a trace


# JavaScript: `figureView(name)`, the rendered view of the Bokeh figure whose model has that name (or null).
FIGURE_VIEW_JS = """const figureView = (name) => {
  const idx = Bokeh.index;
  const roots = idx instanceof Map ? [...idx.values()] : Object.values(idx);
  const seen = new Set(), stack = [...roots];
  while (stack.length) {
    const v = stack.pop();
    if (!v || seen.has(v)) continue;
    seen.add(v);
    if (v.model && v.model.name === name && v.frame) return v;
    for (const c of (v.child_views ?? [])) stack.push(c);
  }
  return null;
};"""


# Tornado logs this when a tab closes while the server is writing to it: the client went away, the server
# is fine (the app's own exceptions are what the check is for)
_CLIENT_GONE = re.compile(r"Task exception was never retrieved\nfuture: <Task finished[^\n]*WebSocketClosedError\(\)>\n"
                          r"(?:(?!\d{4}-\d\d-\d\d )[^\n]*\n)*?tornado\.websocket\.WebSocketClosedError\n")


def without_client_gone(log: str) -> str:
    """A server's log without Tornado's report of a tab that closed while being written to."""
    return _CLIENT_GONE.sub("", log)
