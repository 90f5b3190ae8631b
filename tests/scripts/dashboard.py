"""Drives balancer's dashboard in headless Chromium (WebDriver) for the
dashboard test: the token refused and asked for, the page with the right
token (no console errors), a backend going down, the Drain button, a phone's
width, and a screenshot. Prints one JSON line per step; between steps that
need the test to act it waits for a line on stdin.

usage: dashboard.py URL TOKEN SCREENSHOT DOWN_BACKEND DRAIN_BACKEND
"""
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

URL, TOKEN, SHOT, DOWN, DRAIN = sys.argv[1:6]


def say(**kw):
    print(json.dumps(kw), flush=True)


def until(what, cond, secs=15):
    end = time.time() + secs
    while time.time() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # the page is re-rendering; ask again
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}: {driver.page_source[:3000]}")


def shown(id_):
    return driver.find_element(By.ID, id_).is_displayed()


def row_state(address):
    for row in driver.find_elements(By.CSS_SELECTOR, "#pools tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if cells and cells[0].text.split(" ")[0] == address:
            return cells[1].text
    return None


def severe():
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


opts = Options()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,2000"]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    # A wrong token is refused, and the page asks for another.
    driver.get(URL + "#token=wrong")
    until("the token form", lambda: shown("token-form"))
    say(step="wrong", error=until("an error", lambda: driver.find_element(By.ID, "token-error").text))

    # No token: asked for; typed in and sent with the keyboard.
    driver.execute_script("sessionStorage.clear()")
    driver.get(URL)
    until("the token form", lambda: shown("token-form"))
    missing = driver.find_element(By.ID, "token-error").text
    field = driver.find_element(By.ID, "token")
    field.send_keys(TOKEN)
    field.send_keys(Keys.ENTER)
    until("the dashboard", lambda: shown("main"))
    say(step="missing", error=missing)

    # A fresh load with the right token: the real backends, no console error.
    driver.execute_script("sessionStorage.clear()")
    driver.get_log("browser")
    driver.get(URL + "#token=" + TOKEN)
    until("the dashboard", lambda: shown("main"))
    until("backend rows", lambda: row_state(DOWN) and row_state(DRAIN))
    time.sleep(2.5)  # a few polls, so rates and sparklines have data
    # The page re-renders its tables every second, so a row read cell by
    # cell can go stale midway: read them as `until` reads everything.
    rows = until("the backend rows read whole", lambda: [
        [c.text for c in r.find_elements(By.TAG_NAME, "td")][:3]
        for r in driver.find_elements(By.CSS_SELECTOR, "#pools tbody tr")
    ])
    say(step="loaded", rows=rows, severe=severe(), sparks=len(driver.find_elements(By.CSS_SELECTOR, "svg.spark polyline")))

    sys.stdin.readline()  # the test stops a backend
    start = time.time()
    until("the backend down", lambda: row_state(DOWN) == "down", secs=20)
    say(step="down", seconds=round(time.time() - start, 2))

    driver.find_element(By.CSS_SELECTOR, f'button[aria-label="drain {DRAIN}"]').click()
    until("the drain", lambda: row_state(DRAIN) == "draining")
    say(step="drained", notice=driver.find_element(By.ID, "notice").text)

    driver.save_screenshot(SHOT)
    # A phone: nothing wider than the screen but the tables, which scroll.
    driver.set_window_size(390, 844)
    time.sleep(1.5)
    width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    say(step="phone", scroll_width=width[0], width=width[1], severe=severe())
finally:
    driver.quit()
