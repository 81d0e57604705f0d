"""The page of ``nerfocal serve`` in headless Chromium: type, click Tag, see the entities inline.

Needs Debian's ``chromium`` and ``chromium-driver`` (/usr/bin/chromium, /usr/bin/chromedriver) and
selenium; skipped with the reason when one is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from _serve_helpers import start_server, stop_server
from fixtures import IOB2_LABELS, save_tiny_model

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# an emoji before the entities: Python offsets count code points, JavaScript strings UTF-16 units
TEXT = "🙂 Angela Merkel visited Paris in June with the European Union delegation ."

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
By = pytest.importorskip("selenium.webdriver.common.by").By
WebDriverWait = pytest.importorskip("selenium.webdriver.support.ui").WebDriverWait
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    reason = f"chromium or chromedriver missing ({CHROMIUM}, {CHROMEDRIVER}): apt install chromium-driver"

    pytest.skip(reason, allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    model_dir = save_tiny_model(tmp_path_factory.mktemp("browser"), IOB2_LABELS, max_length=24)
    process, url = start_server(model_dir)
    yield url
    stop_server(process)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,700"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_tag_button_highlights_the_entities_of_predict(server: str, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expected = httpx.post(f"{server}/predict", json={"texts": [TEXT]}, timeout=30).json()
    entities = expected["predictions"][0]["entities"]
    assert entities, "the tiny model predicts no entity here: the page check would be empty"
    browser.get(f"{server}/")
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(TEXT)
    browser.find_element(By.ID, "tag").click()
    WebDriverWait(browser, 30).until(lambda d: "entit" in d.find_element(By.ID, "status").text)
    marks = browser.find_elements(By.CSS_SELECTOR, "#output mark.nf-ent")
    got = [(m.find_element(By.CLASS_NAME, "nf-text").text, m.get_attribute("data-label")) for m in marks]
    assert got == [(e["text"], e["label"]) for e in entities]
    for mark, entity in zip(marks, entities, strict=True):
        assert mark.find_element(By.CLASS_NAME, "nf-label").text.upper() == entity["label"].upper()
        assert mark.get_attribute("title") == f"{entity['label']} {entity['score']:.3f}"
    colours = {m.get_attribute("data-label"): m.value_of_css_property("background-color") for m in marks}
    assert len(set(colours.values())) == len(colours)  # one colour per type
    assert browser.find_element(By.ID, "output").text.replace("\n", "").startswith("🙂")
    shot = tmp_path / "serve_page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000


def test_an_error_of_the_api_is_shown_on_the_page(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    browser.get(f"{server}/")
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys("x" * 10)
    browser.execute_script(
        "window.fetch = (f => (url, init) => f(url, Object.assign({}, init, {body: '{}'})))(window.fetch);"
    )
    browser.find_element(By.ID, "tag").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "status").text.startswith("error"))
    assert "texts" in browser.find_element(By.ID, "status").text
