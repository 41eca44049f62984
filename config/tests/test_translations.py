"""Django merges the apps' translation catalogs into one and the first app listed wins a msgid that
two apps translate; two different Chinese words for one English one would show whichever app is
loaded first (the agent screen once showed 送达 for 已送达 this way). So the catalogs must agree."""

import gettext
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_apps_translate_a_shared_message_the_same_way():
    translations: dict[str, dict[str, str]] = defaultdict(dict)
    catalogs = sorted(ROOT.glob("*/locale/zh_Hans/LC_MESSAGES/django.mo"))
    assert len(catalogs) >= 3, catalogs  # conversations, kb, tickets at least
    for path in catalogs:
        with path.open("rb") as file:
            catalog = gettext.GNUTranslations(file)._catalog
        for msgid, msgstr in catalog.items():
            if isinstance(msgid, str) and msgid and msgstr:  # plural forms are tuples; "" is the header
                translations[msgid][path.parts[-5]] = msgstr
    disagreements = {msgid: by_app for msgid, by_app in translations.items() if len(set(by_app.values())) > 1}
    assert disagreements == {}
