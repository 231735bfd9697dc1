"""Block Kit checks the sandbox applies before accepting a message or a view.

Not a full Block Kit schema: the limits a bot plausibly trips (block counts, missing
types, text lengths, modal title and metadata sizes, submit with inputs), reported the way
Slack reports them. Messages fail with `invalid_blocks` (or `invalid_blocks_format` when
`blocks` is not a JSON array of objects); views fail with `invalid_arguments`, and with
`view_too_large` above 250 kB. Part of sandbox.slack.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from .errors import ApiError

MESSAGE_MAX_BLOCKS = 50
VIEW_MAX_BLOCKS = 100
MESSAGE_MAX_TEXT = 40_000
MODAL_TITLE_MAX = 24
PRIVATE_METADATA_MAX = 3000
CALLBACK_ID_MAX = 255
VIEW_MAX_BYTES = 250_000

BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "file", "header", "image", "input", "markdown", "rich_text",
     "section", "video"}
)
_TEXT_LIMITS = {"section": 3000, "header": 150}
_ELEMENT_LIMITS = {"actions": 25, "context": 10}
BUTTON_VALUE_MAX = 2000


def decode_json_arg(value: Any) -> Any:
    """Return a JSON argument decoded: form bodies carry blocks and views as JSON strings."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def with_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return blocks each with a block_id: Slack makes one up for blocks sent without it."""
    return [block if block.get("block_id") else {**block, "block_id": secrets.token_urlsafe(4)[:5]}
            for block in blocks]


def block_problems(blocks: Any, pointer: str, max_blocks: int) -> list[str]:
    """Return Slack-style error messages for a list of blocks (empty when acceptable)."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    problems = []
    if len(blocks) > max_blocks:
        problems.append(f"[ERROR] no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    seen_ids: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"{pointer}/{index}"
        if not isinstance(block, dict):
            problems.append(f"[ERROR] must be an object [json-pointer:{where}]")
            continue
        kind = block.get("type")
        if kind is None:
            problems.append(f"[ERROR] missing required field: type [json-pointer:{where}]")
            continue
        if kind not in BLOCK_TYPES:
            problems.append(f"[ERROR] unsupported type: {kind} [json-pointer:{where}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen_ids:
                problems.append(f"[ERROR] duplicate block_id: {block_id} [json-pointer:{where}/block_id]")
            seen_ids.add(block_id)
            if len(str(block_id)) > 255:
                problems.append(f"[ERROR] must be less than 256 characters [json-pointer:{where}/block_id]")
        problems.extend(_block_content_problems(block, kind, where))
    return problems


def _block_content_problems(block: dict[str, Any], kind: str, where: str) -> list[str]:
    problems = []
    text = block.get("text")
    limit = _TEXT_LIMITS.get(kind)
    if limit and isinstance(text, dict) and len(str(text.get("text", ""))) > limit:
        problems.append(f"[ERROR] must be less than {limit + 1} characters [json-pointer:{where}/text/text]")
    if kind in ("section", "header") and text is not None and not isinstance(text, dict):
        problems.append(f"[ERROR] must be an object [json-pointer:{where}/text]")
    elements = block.get("elements")
    limit = _ELEMENT_LIMITS.get(kind)
    if limit and isinstance(elements, list) and len(elements) > limit:
        problems.append(f"[ERROR] no more than {limit} items allowed [json-pointer:{where}/elements]")
    for index, element in enumerate(elements if kind == "actions" and isinstance(elements, list) else []):
        value = element.get("value") if isinstance(element, dict) else None
        if value is not None and len(str(value)) > BUTTON_VALUE_MAX:
            problems.append(
                f"[ERROR] must be less than {BUTTON_VALUE_MAX + 1} characters "
                f"[json-pointer:{where}/elements/{index}/value]"
            )
    return problems


def check_message(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    """Return (text, blocks) of a message, or raise the refusal chat.postMessage would give."""
    text = args.get("text") or ""
    blocks = args.get("blocks")
    if blocks is not None and blocks != "":
        try:
            blocks = decode_json_arg(blocks)
        except ValueError:
            raise ApiError("invalid_blocks_format") from None
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            raise ApiError("invalid_blocks_format")
        problems = block_problems(blocks, "/blocks", MESSAGE_MAX_BLOCKS)
        if problems:
            # Slack names the problems twice: top-level `errors` and response_metadata.
            raise ApiError("invalid_blocks", *problems, errors=[p.removeprefix("[ERROR] ") for p in problems])
    else:
        blocks = None
    if not str(text).strip() and not blocks and not args.get("attachments"):
        raise ApiError("no_text")
    if len(str(text)) > MESSAGE_MAX_TEXT:
        raise ApiError("msg_too_long")
    return str(text), blocks


def check_view(raw: Any) -> dict[str, Any]:
    """Return the decoded view, or raise the refusal views.open/push/update/publish would give."""
    if raw is None or raw == "":
        raise ApiError("invalid_arguments", "[ERROR] missing required field: view")
    if isinstance(raw, str) and len(raw.encode()) > VIEW_MAX_BYTES:
        raise ApiError("view_too_large")
    try:
        view = decode_json_arg(raw)
    except ValueError:
        raise ApiError("invalid_arguments", "[ERROR] invalid json [json-pointer:/view]") from None
    if not isinstance(view, dict):
        raise ApiError("invalid_arguments", "[ERROR] must be an object [json-pointer:/view]")
    if len(json.dumps(view).encode()) > VIEW_MAX_BYTES:
        raise ApiError("view_too_large")
    problems = _view_problems(view)
    if problems:
        raise ApiError("invalid_arguments", *problems)
    return view


def _view_problems(view: dict[str, Any]) -> list[str]:
    kind = view.get("type")
    if kind not in ("modal", "home"):
        return ["[ERROR] must be one of modal, home [json-pointer:/view/type]"]
    problems = block_problems(view.get("blocks"), "/view/blocks", VIEW_MAX_BLOCKS)
    if kind == "modal":
        problems.extend(_modal_problems(view))
    if len(str(view.get("private_metadata", ""))) > PRIVATE_METADATA_MAX:
        problems.append(
            f"[ERROR] must be less than {PRIVATE_METADATA_MAX + 1} characters [json-pointer:/view/private_metadata]"
        )
    if len(str(view.get("callback_id", ""))) > CALLBACK_ID_MAX:
        problems.append(
            f"[ERROR] must be less than {CALLBACK_ID_MAX + 1} characters [json-pointer:/view/callback_id]"
        )
    return problems


def _modal_problems(view: dict[str, Any]) -> list[str]:
    problems = []
    title = view.get("title")
    if not isinstance(title, dict) or not title.get("text"):
        problems.append("[ERROR] missing required field: title [json-pointer:/view/title]")
    elif len(title["text"]) > MODAL_TITLE_MAX:
        # The wording Slack uses for the 24-character cap, as reported by users of the API.
        problems.append("[ERROR] failed to match all allowed schemas [json-pointer:/view/title]")
        problems.append(f"[ERROR] must be less than {MODAL_TITLE_MAX} characters [json-pointer:/view/title/text]")
    blocks = view.get("blocks")
    has_input = isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input and not view.get("submit"):
        problems.append("[ERROR] submit is required when an input block is present [json-pointer:/view/submit]")
    return problems
