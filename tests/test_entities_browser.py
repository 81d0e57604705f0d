"""A real browser (headless Chromium through Selenium) opens a rendered entities page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nerfocal.entities_html import render_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="needs chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
    ),
]

DOCS = [
    {
        "text": "Angela Merkel visited <Paris> in May.",
        "entities": [
            {"text": "Angela Merkel", "label": "PER", "start": 0, "end": 13, "score": 0.98},
            {"text": "<Paris>", "label": "LOC", "start": 22, "end": 29, "score": 0.71},
        ],
    },
    {"tokens": ["Ann", "works", "at", "Acme", "Corp"], "tags": ["B-PER", "O", "O", "B-ORG", "I-ORG"],
     "entities": [{"text": "Ann", "label": "PER", "start": 0, "end": 1, "score": 0.9},
                  {"text": "Acme", "label": "LOC", "start": 3, "end": 4, "score": 0.4}]},
]  # fmt: skip


@pytest.fixture
def driver():  # type: ignore[no-untyped-def]
    selenium = pytest.importorskip("selenium", reason="needs the selenium package")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,400"):
        options.add_argument(flag)
    try:
        browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except selenium.common.exceptions.WebDriverException as err:  # type: ignore[attr-defined]
        pytest.skip(f"chromium did not start: {str(err).splitlines()[0]}")
    yield browser
    browser.quit()


def test_browser_shows_highlighted_entities_with_labels(driver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    page = tmp_path / "entities.html"
    page.write_text(render_page(DOCS, "nerfocal entities"), encoding="utf-8")
    driver.get(page.as_uri())
    assert driver.title == "nerfocal entities"
    docs = driver.find_elements(By.CSS_SELECTOR, ".nf-doc")
    assert len(docs) == 2
    preds = docs[0].find_elements(By.CSS_SELECTOR, "mark.nf-pred")
    got = [
        (
            m.find_element(By.CSS_SELECTOR, ".nf-text").text,
            m.get_attribute("data-label"),
            m.get_attribute("title"),
        )
        for m in preds
    ]
    assert got == [("Angela Merkel", "PER", "PER · score 0.980"), ("<Paris>", "LOC", "LOC · score 0.710")]
    assert [t.text for t in docs[0].find_elements(By.CSS_SELECTOR, ".nf-tag")] == ["PER", "LOC"]
    assert not driver.find_elements(By.TAG_NAME, "script")  # the escaped text stayed text
    # highlighted: the entity has a background colour, the plain text none
    background = preds[0].value_of_css_property("background-color")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    # the second document: gold underlines, and the wrong prediction (Acme as LOC) outlined
    second = docs[1]
    gold = second.find_elements(By.CSS_SELECTOR, "mark.nf-gold")
    # ORG "Acme Corp" overlaps the predicted LOC "Acme": one <mark> per segment, the same data-start/end
    assert [(m.get_attribute("data-label"), m.get_attribute("data-start")) for m in gold] == [
        ("PER", "0"),
        ("ORG", "3"),
        ("ORG", "3"),
    ]
    assert [m.text for m in second.find_elements(By.CSS_SELECTOR, "mark.nf-gold > .nf-tag")] == ["PER", "ORG"]
    wrong = second.find_elements(By.CSS_SELECTOR, "mark.nf-wrong")
    assert [m.get_attribute("data-label") for m in wrong] == ["LOC"]
    shot = tmp_path / "entities.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 1000
    keep = Path(__import__("os").environ.get("NERFOCAL_SCREENSHOT_DIR", tmp_path))
    if keep != tmp_path:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep / shot.name)


def test_browser_shows_the_report_error_examples_highlighted(driver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    from nerfocal.report import WordPredictions, write_report

    tokens = [["Anna", "Nowak", "visited", "Kraków", "today"]]
    words = WordPredictions(
        tokens, [["B-PER", "I-PER", "O", "B-LOC", "O"]], [["B-PER", "O", "O", "B-ORG", "O"]], None
    )
    write_report(tmp_path, words=words, source="gold.conll", formats=("html",))
    driver.set_window_size(1000, 3000)
    driver.get((tmp_path / "report.html").as_uri())
    blocks = driver.find_elements(By.CSS_SELECTOR, ".nf-sbs")
    assert len(blocks) == 2  # the wrong type and the wrong boundary
    rows = blocks[0].find_elements(By.CSS_SELECTOR, ".nf-row")
    assert [r.find_element(By.CSS_SELECTOR, ".nf-row-name").text for r in rows] == ["gold", "predicted"]
    marks = [m for b in blocks for m in b.find_elements(By.CSS_SELECTOR, "mark")]
    assert {"Kraków", "Anna Nowak"} <= {m.find_element(By.CSS_SELECTOR, ".nf-text").text for m in marks}
    assert blocks[0].find_elements(By.CSS_SELECTOR, "mark.nf-wrong")  # the wrong prediction is outlined
    background = marks[0].value_of_css_property("background-color")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # the report page carries the entity CSS
    shot = tmp_path / "report.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 1000
