"""Which team a handed-off conversation is queued for (docs/AGENTS.md, "Teams and routing").

In this order, the first that answers wins:
1. the customer's menu choice: one of their recent messages is a click on a menu item (微信客服 msgmenu) whose
   text is a team's `menu_choice` (the newest such click counts);
2. keywords: the first team, in the teams' order, with a keyword in one of the customer's recent messages;
3. the default team;
4. no team: every agent may be offered it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from conversations.models import Conversation, Message
from conversations.services.menus import menu_clicks
from tickets.teams.models import Team

# The customer's latest messages looked at: enough for "我要退款 … 转人工" spread over a few lines, few enough that
# a subject from long ago does not decide.
RECENT_CUSTOMER_MESSAGES = 5


class RoutedBy(StrEnum):
    MENU = "menu"
    KEYWORD = "keyword"
    DEFAULT = "default"


@dataclass(frozen=True, kw_only=True)
class Route:
    team: Team | None
    by: RoutedBy | None = None
    matched: str = ""  # the menu choice or the keyword that decided

    def as_detail(self) -> dict:
        """The timeline's record of the decision."""
        return {"team": self.team.name if self.team else None, "team_id": self.team.pk if self.team else None,
                "by": str(self.by) if self.by else None, "matched": self.matched}


def route_conversation(*, conversation: Conversation) -> Route:
    teams = list(Team.objects.all())  # ordered by priority, then name
    if not teams:
        return Route(team=None)
    recent = list(Message.objects.filter(conversation=conversation, author=Message.Author.CUSTOMER)
                  .order_by("-id").values_list("text", "inbound_id")[:RECENT_CUSTOMER_MESSAGES])
    if route := _by_menu_choice(teams, recent):
        return route
    if route := _by_keyword(teams, [text for text, _inbound in recent]):
        return route
    default = next((team for team in teams if team.is_default), None)
    return Route(team=default, by=RoutedBy.DEFAULT if default else None)


def _by_menu_choice(teams: list[Team], recent: list[tuple[str, int | None]]) -> Route | None:
    by_choice = {team.menu_choice.strip(): team for team in reversed(teams) if team.menu_choice.strip()}
    if not by_choice:
        return None
    clicked = menu_clicks(inbound_ids=[inbound for _text, inbound in recent if inbound])
    for text, inbound in recent:  # newest first
        if inbound in clicked and (team := by_choice.get(text.strip())):
            return Route(team=team, by=RoutedBy.MENU, matched=text.strip())
    return None


def _by_keyword(teams: list[Team], texts: list[str]) -> Route | None:
    folded = [text.casefold() for text in texts]
    for team in teams:
        for keyword in team_keywords(team):
            if any(keyword.casefold() in text for text in folded):
                return Route(team=team, by=RoutedBy.KEYWORD, matched=keyword)
    return None


def team_keywords(team: Team) -> list[str]:
    """The team's keywords as stored (a JSON list the admin validates); anything else in it is ignored."""
    value = team.keywords if isinstance(team.keywords, list) else []
    return [keyword.strip() for keyword in value if isinstance(keyword, str) and keyword.strip()]
