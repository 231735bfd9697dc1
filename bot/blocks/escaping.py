"""What people typed, made safe to show in mrkdwn.

Slack reads `<...>` in mrkdwn, and in a message's fallback `text`, as a mention, a broadcast
(`<!channel>`) or a link, and `&` as the start of an entity. Whatever a user typed (a request's
reason, an approver's Deny reason, a command's arguments) goes through `escape` before it is
put into either, so it shows as typed and pings or links nothing; the bot's own markup is added
around it. What is stored is never escaped: only what is shown. Imported by bot.blocks.
"""

from __future__ import annotations

import re

from leases.ports import Notice

# Slack's documented escapes ("Escaping text" in the mrkdwn formatting reference); & goes first
# so the other two are not escaped twice.
_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


def escape(text: str) -> str:
    """Return user text with &, < and > escaped, so mrkdwn shows it as typed."""
    for raw, entity in _ESCAPES:
        text = text.replace(raw, entity)
    return text


def _typed(notice: Notice) -> set[str]:
    """Return the words users typed that a notice carries: the request's reason, a Deny reason."""
    found = ((notice.lease or {}).get("reason"), (notice.data or {}).get("reason"))
    return {str(value) for value in found if value}


# The bot's own markup in a notice's text: a user or channel mention, a broadcast, a link.
_MARKUP = re.compile(r"<[@#!][^<>\s]*>|<https?://[^<>\s]*>")


def notice_text(notice: Notice) -> str:
    """Return a notice's text as mrkdwn: the users' words in it escaped, the rest as written.

    The workflows write a notice's text with the bot's own mentions (`<@U…>`) and, as typed,
    what users gave, which the notice also carries in its lease or data (`_typed`); those words
    are escaped where they stand, so the mentions stay mentions. Where a typed word and the
    bot's markup start at the same place, the longer wins (a typed "<" is not the start of
    the bot's `<@U…>`; a typed `<!channel>` is escaped, not kept as a broadcast).
    """
    unsafe = sorted((t for t in _typed(notice) if escape(t) != t), key=len, reverse=True)
    if not unsafe:
        return notice.text
    text, out, i = notice.text, [], 0
    while i < len(text):
        typed = next((t for t in unsafe if text.startswith(t, i)), "")
        markup = _MARKUP.match(text, i)
        if typed and (markup is None or len(typed) >= markup.end() - i):
            out.append(escape(typed))
            i += len(typed)
        elif markup is not None:
            out.append(markup.group())
            i = markup.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
