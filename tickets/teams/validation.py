"""What makes a team's routing settings unusable, said per field (the admin shows it; nothing is saved).

Keywords are tried team by team in the teams' order (tickets/teams/routing.py), so a keyword another team has
already would only ever route to whichever comes first: refused, naming that team. The same holds for the menu
choice. A tenant has one default team at most.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from tickets.teams.models import Team

KEYWORD_MAX_LENGTH = 32
MAX_KEYWORDS = 50


def team_problems(*, name: str, keywords: list, menu_choice: str, is_default: bool,
                  team_id: int | None = None) -> dict[str, str]:
    problems: dict[str, str] = {}
    others = list(Team.objects.exclude(pk=team_id)) if team_id else list(Team.objects.all())
    if problem := _keyword_problem(keywords, others):
        problems["keywords"] = problem
    choice = menu_choice.strip()
    if choice and (same := next((t for t in others if t.menu_choice.strip().casefold() == choice.casefold()), None)):
        problems["menu_choice"] = _("The team %(team)s has this menu choice already.") % {"team": same.name}
    if is_default and (default := next((t for t in others if t.is_default), None)):
        problems["is_default"] = _("%(team)s is the default team already: untick it there first.") % {
            "team": default.name}
    if not name.strip():
        problems["name"] = _("A team needs a name.")
    return problems


def _keyword_problem(keywords: list, others: list[Team]) -> str | None:
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
        return _("Each keyword is a non-empty text.")
    if len(keywords) > MAX_KEYWORDS:
        return _("At most %(n)d keywords.") % {"n": MAX_KEYWORDS}
    seen: set[str] = set()
    for keyword in (k.strip() for k in keywords):
        if len(keyword) > KEYWORD_MAX_LENGTH:
            return _("“%(keyword)s” is longer than %(n)d characters.") % {"keyword": keyword, "n": KEYWORD_MAX_LENGTH}
        folded = keyword.casefold()
        if folded in seen:
            return _("“%(keyword)s” is listed twice.") % {"keyword": keyword}
        seen.add(folded)
        for team in others:
            if any(isinstance(k, str) and k.strip().casefold() == folded for k in team.keywords or []):
                return _("“%(keyword)s” is a keyword of the team %(team)s already.") % {"keyword": keyword,
                                                                                       "team": team.name}
    return None
