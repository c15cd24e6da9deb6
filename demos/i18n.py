"""The app in two languages: English and Persian (فارسی), one translation table per language in locales/*.toml.

How a string reaches the page, and how the language reaches the server
--------------------------------------------------------------------
* Text fixed when the Blocks is built (labels, info lines, button text, tab names, Markdown explanations and
  formula captions, Radio/Dropdown choice labels) is written as `T("key")`: a `gr.I18n` key that gradio's own
  frontend translates in the browser (gradio 6 translates the label, info, placeholder, description, title and
  value props of every component, and choice labels). `launch(i18n=gradio_i18n())` sends both tables with the
  config. `T("key", n=3)` fills placeholders when the page is built: it registers a derived key whose text in each
  language is pre-formatted.
* Which language the browser shows: gradio picks its locale from `navigator.language` ("fa-IR" -> "fa") before
  any app code runs. `HEAD_JS` (sent as `launch(head=...)`, run right after that) decides the language the way a
  visitor expects: `?lang=fa|en` in the URL, else the language last chosen with the switch (localStorage), else
  the browser's locale. It then calls gradio's exported `changeLocale` if gradio chose otherwise, sets
  `<html dir="rtl">` for Persian and writes `?lang=` into the address bar (history.replaceState, no reload).
* Text made by Python at request time (status and progress lines, warnings and errors, model cards, plot titles
  and axis labels) is `tr("key", **values)`. Its language comes from the request gradio is serving, with no extra
  input on any endpoint (the API stays as it was): gradio keeps the current `gr.Request` in a context variable
  for every callback and every step of a generator, and that request (the queue's join request) carries the
  page's URL as its Referer, so `?lang=` is read from there; then the `diffusion_lab_lang` cookie the page sets;
  then the browser's Accept-Language header; else English. Calls outside a request (tests, scripts, the Python
  API client) get English, exactly as before.
* The switch in the header (`language_switch`) reloads the page with `?lang=`: every panel, including those the
  server drew on page load, is then in the new language.

Keys are dotted (`ddpm.steps`, from the TOML tables' sections); placeholders are `{name}` with an optional format
spec (`{seconds:.0f}`), filled only for names passed in, so LaTeX braces such as `x_{t-1}` are left alone.
tests/test_i18n.py checks that both tables have the same keys and placeholders, and that a Persian page has no
English left apart from the technical tokens it allows.
"""
from __future__ import annotations

import contextvars
import functools
import glob
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import gradio as gr

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = ("en", "fa")
DEFAULT = "en"
RTL = {"fa"}
NAMES = {"en": "English", "fa": "فارسی"}  # each language named in itself (the switch's labels)
COOKIE = "diffusion_lab_lang"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")


def _flatten(table: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _flatten(v, key + ".")
        else:
            out[key] = v
    return out


@functools.cache
def table(lang: str) -> dict[str, str]:
    """locales/<lang>.toml as {dotted key: text}."""
    with open(LOCALES_DIR / f"{lang}.toml", "rb") as f:
        return _flatten(tomllib.load(f))


def fill(text: str, values: dict) -> str:
    """Put values into the `{name}` / `{name:spec}` placeholders named in `values`; other braces stay as they are."""
    if not values:
        return text

    def sub(m):
        name, spec = m.group(1), m.group(2)
        return format(values[name], spec or "") if name in values else m.group(0)
    return _PLACEHOLDER.sub(sub, text)


def translate(key: str, lang: str | None = None, **values) -> str:
    """The text of `key` in `lang` (default: the language of the request being served), placeholders filled.
    A key missing from Persian falls back to English; a key missing from English raises KeyError."""
    lang = lang or current_lang()
    if key in _DERIVED:  # a build-time text registered by T(key, **values) / T_each
        return _DERIVED[key].get(lang, _DERIVED[key][DEFAULT])
    text = table(lang).get(key) if lang in LANGUAGES else None
    if text is None:
        text = table(DEFAULT)[key]
    return fill(text, values)


tr = translate


def resolve(text, lang: str | None = None) -> str:
    """What gradio's frontend shows for a prop: an I18nData, or a string holding one `__i18n__{...}` marker
    (as a Markdown or Button value is stored), translated; any other text as it is."""
    if isinstance(text, gr.i18n.I18nData):
        return translate(text.key, lang)
    text = str(text)
    start = text.find("__i18n__")
    end = text.find("}", start) + 1
    if start < 0 or end == 0:
        return text
    try:
        key = json.loads(text[start + 8:end])["key"]
    except (ValueError, KeyError):
        return text
    return text[:start] + translate(key, lang) + text[end:]


def has(key: str) -> bool:
    return key in table(DEFAULT)


def maybe(text, lang: str | None = None) -> str:
    """A name that may be a key (`common.seed`) or literal text (a symbol like `t` or `η`): its text."""
    if isinstance(text, gr.i18n.I18nData):
        return translate(text.key, lang)
    return translate(text, lang) if isinstance(text, str) and has(text) else str(text)


# derived keys registered by T(key, **values) while the Blocks is built: {derived key: {lang: text}}
_DERIVED: dict[str, dict[str, str]] = {}


def T(key: str, **values) -> gr.i18n.I18nData:
    """A key for text fixed when the page is built, translated by gradio's frontend (see the module docstring)."""
    table(DEFAULT)[key]  # a missing key fails here, when the tab is built, not silently in the browser
    if not values:
        return gr.i18n.I18nData(key)
    digest = hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:10]
    derived = f"{key}#{digest}"
    _DERIVED[derived] = {lang: translate(key, lang, **values) for lang in LANGUAGES}
    return gr.i18n.I18nData(derived)


def T_each(name: str, make) -> gr.i18n.I18nData:
    """A key for build-time text that Python composes in each language: `make(lang) -> text`."""
    texts = {lang: make(lang) for lang in LANGUAGES}
    digest = hashlib.sha1(json.dumps(texts, sort_keys=True).encode()).hexdigest()[:10]
    _DERIVED[f"{name}#{digest}"] = texts
    return gr.i18n.I18nData(f"{name}#{digest}")


def gradio_i18n() -> gr.I18n:
    """Both tables (and the pre-formatted derived keys) for `launch(i18n=...)`."""
    tables = {lang: dict(table(lang)) for lang in LANGUAGES}
    for key, texts in _DERIVED.items():
        for lang in LANGUAGES:
            tables[lang][key] = texts[lang]
    return gr.I18n(**tables)


# ---------------------------------------------------------------- the request's language
def _pick(code: str | None) -> str | None:
    code = (code or "").strip().lower()
    for lang in LANGUAGES:
        if code == lang or code.startswith(lang + "-"):
            return lang
    return None


def lang_of_request(request) -> str:
    """The language of one gr.Request: the page's ?lang= (Referer), the cookie, Accept-Language, else English."""
    if request is None:
        return DEFAULT
    try:
        headers = {k.lower(): v for k, v in dict(request.headers).items()}
    except Exception:  # a request without headers (a test's stand-in)
        headers = {}
    referer = headers.get("referer", "")
    if referer:
        lang = _pick((parse_qs(urlsplit(referer).query).get("lang") or [""])[0])
        if lang:
            return lang
    try:
        cookies = dict(request.cookies)
    except Exception:
        cookies = {}
    lang = _pick(cookies.get(COOKIE))
    if lang:
        return lang
    for part in headers.get("accept-language", "").split(","):  # in the browser's order of preference
        code = part.split(";")[0].strip()
        if code and code != "*":
            return _pick(code) or DEFAULT
    return DEFAULT


def current_lang() -> str:
    """The language of the request gradio is serving now (English outside a request)."""
    forced = _FORCED.get(None)
    if forced:
        return forced
    from gradio.context import LocalContext
    return lang_of_request(LocalContext.request.get(None))


_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("diffusion_lab_lang", default=None)


class language:
    """`with language("fa"): ...` runs code as if a Persian page had asked (tests, page-load warm-ups)."""

    def __init__(self, lang: str):
        self.lang = lang

    def __enter__(self):
        self.token = _FORCED.set(self.lang)
        return self

    def __exit__(self, *exc):
        _FORCED.reset(self.token)


def is_rtl(lang: str | None = None) -> bool:
    return (lang or current_lang()) in RTL


# ---------------------------------------------------------------- the page: script, styles, switch
def _core_module() -> str:
    """gradio's frontend module that exports changeLocale (the one its Settings panel uses), relative to the page."""
    gradio_dir = Path(gr.__file__).parent
    found = sorted(glob.glob(str(gradio_dir / "templates" / "frontend" / "assets" / "core-*.js")))
    return f"./assets/{Path(found[0]).name}" if found else ""


def head_js() -> str:
    supported = json.dumps(list(LANGUAGES))
    rtl = json.dumps(sorted(RTL))
    return f"""<script>
(() => {{
  const SUPPORTED = {supported}, RTL = {rtl}, KEY = "diffusion-lab-lang", COOKIE = "{COOKIE}";
  const pick = (code) => {{
    code = (code || "").toLowerCase();
    return SUPPORTED.find((l) => code === l || code.startsWith(l + "-")) || null;
  }};
  let stored = null;
  try {{ stored = localStorage.getItem(KEY); }} catch (e) {{}}
  const url = new URL(window.location.href);
  const lang = pick(url.searchParams.get("lang")) || pick(stored) || pick(navigator.language) || "en";
  window.__diffusion_lab_lang__ = lang;
  const apply = (l) => {{
    document.documentElement.setAttribute("dir", RTL.includes(l) ? "rtl" : "ltr");
    document.documentElement.classList.toggle("rtl", RTL.includes(l));
  }};
  apply(lang);
  document.cookie = COOKIE + "=" + lang + "; path=/; max-age=31536000; SameSite=Lax";
  if (url.searchParams.get("lang") !== lang) {{  // the server reads ?lang= from the page's address (Referer)
    url.searchParams.set("lang", lang);
    history.replaceState(history.state, "", url);
  }}
  const current = (document.documentElement.lang || "").toLowerCase();
  if (pick(current) !== lang && (lang !== "en" || pick(current) === "fa")) {{
    import("{_core_module()}").then((m) => m.changeLocale(lang)).catch((e) => console.error("locale", e));
  }}
  // gradio's footer Settings can change the language too: follow it with the direction
  new MutationObserver(() => apply(pick(document.documentElement.lang) === "fa" ? "fa" : "en"))
    .observe(document.documentElement, {{attributes: true, attributeFilter: ["lang"]}});
}})();
</script>"""


# the switch: its value is the page's language (set on load), and choosing the other reloads the page with ?lang=
SWITCH_FROM_PAGE_JS = "() => window.__diffusion_lab_lang__ || 'en'"
SWITCH_JS = """(lang) => {
  try { localStorage.setItem("diffusion-lab-lang", lang); } catch (e) {}
  const url = new URL(window.location.href);
  url.searchParams.set("lang", lang);
  window.location.assign(url);
  return lang;
}"""


def language_switch(demo: gr.Blocks) -> gr.Radio:
    """English / فارسی in the header."""
    switch = gr.Radio([(NAMES[lang], lang) for lang in LANGUAGES], value=DEFAULT, show_label=False,
                      container=False, scale=0, min_width=170, elem_id="language-switch")
    demo.load(None, None, switch, js=SWITCH_FROM_PAGE_JS, api_visibility="private")
    switch.input(None, switch, None, js=SWITCH_JS, api_visibility="private")
    return switch


# Right to left for Persian: the page, its text and its labels; formulas, code, numbers, plots and image grids stay
# left to right (a slider is a number line like the plots' axes: its track, min and max keep their direction, its label
# does not)
RTL_CSS = """
html.rtl body, html.rtl .gradio-container, html.rtl .gradio-container [dir="ltr"] { direction: rtl; }
html.rtl .prose, html.rtl label, html.rtl .block-info, html.rtl span[data-testid="block-info"],
html.rtl textarea, html.rtl .md { text-align: start; }
html.rtl .gradio-container, html.rtl .gradio-container button, html.rtl .gradio-container textarea,
html.rtl .gradio-container input { font-family: Vazirmatn, "Noto Sans Arabic", Tahoma, "DejaVu Sans", sans-serif; }
html.rtl .gradio-container .katex, html.rtl .gradio-container .katex-display, html.rtl .gradio-container code,
html.rtl .gradio-container pre, html.rtl .gradio-container .ltr, html.rtl .gradio-container input[type="number"],
html.rtl .gradio-container input[type="range"], html.rtl .gradio-container .slider_input_container,
html.rtl .gradio-container .grid-wrap,
html.rtl .gradio-container .thumbnails, html.rtl .gradio-container .image-container img,
html.rtl .gradio-container .js-plotly-plot, html.rtl .gradio-container .cm-editor { direction: ltr;
  unicode-bidi: isolate; }
html.rtl .gradio-container .cm-editor .cm-line { text-align: left; }
html.rtl .gradio-container .katex-display { text-align: center; }
html.rtl .gradio-container .player { flex-direction: row-reverse; }  /* ◀ step … step ▶ in the slider's direction */
html.rtl .gradio-container label > input[type="radio"], html.rtl .gradio-container label > input[type="checkbox"] {
  margin-left: var(--spacing-md, 6px); }
html.rtl .gradio-container .file-preview td, html.rtl .gradio-container .file-preview a { direction: ltr;
  unicode-bidi: isolate; }
html.rtl .gradio-container pre, html.rtl .gradio-container pre code { text-align: left; }
"""
