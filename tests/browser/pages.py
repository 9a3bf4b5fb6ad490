"""Opening the served dashboard in a test: one helper for every browser test file."""
WAIT = 120_000  # ms: every wait is on a state, bounded generously for a busy 2-core machine (a CPU-bound job beside)


def open_dashboard(browser, url, page_errors, width=1280, height=720, timeout=WAIT):
    """A new page at `url`, once its PE array and the line above it are drawn: (page, its console errors)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = page_errors(page)
    page.goto(url)
    page.locator(".chipviz-op-info").first.wait_for(timeout=timeout)
    page.locator(".cv-canvas").first.wait_for(timeout=timeout)
    return page, errors
