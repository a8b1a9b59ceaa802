"""ChatGPT's data export (``conversations.json``) as Parley exports, ready to import.

Each ChatGPT conversation is a tree: ``mapping`` holds nodes (``id``, ``parent``,
``children``, ``message``) and ``current_node`` is the leaf of the branch on screen. What
becomes a Parley message: user, assistant and system messages whose content is text, or
text with images (``multimodal_text``), addressed to the user (``recipient`` ``all``).
What does not: empty nodes, hidden ones (the empty system prompt at the root, custom
instructions), tool traffic (browsing, code runs, their results), reasoning and other
content types. A skipped node's children hang from its nearest kept ancestor, so the
branches stay as they were and ``current_node`` still names the current branch's leaf.
"""

from __future__ import annotations

from typing import Any

from parley.chat.conversations import EXPORT_FORMAT
from parley.chat.parts import text_part
from parley.errors import InvalidRequest

_STATUS = {"finished_partial_completion": "stopped", "in_progress": "stopped"}


def is_chatgpt_export(data: object) -> bool:
    """A ``conversations.json`` (a list of conversations) or one conversation of it."""
    if isinstance(data, list):
        return bool(data) and all(isinstance(c, dict) and "mapping" in c for c in data)
    return isinstance(data, dict) and "mapping" in data


def to_parley(data: object) -> list[dict[str, Any]]:
    """Parley exports, one per ChatGPT conversation; 400 naming the first one that is
    not a conversation tree."""
    conversations = data if isinstance(data, list) else [data]
    return [_conversation(c, f"[{i}]") for i, c in enumerate(conversations)]


def _conversation(conversation: object, where: str) -> dict[str, Any]:
    mapping = conversation.get("mapping") if isinstance(conversation, dict) else None
    if not isinstance(mapping, dict) or not all(isinstance(n, dict) for n in mapping.values()):
        raise InvalidRequest("a ChatGPT conversation has a mapping of nodes", param=where)
    assert isinstance(conversation, dict)
    messages: list[dict[str, Any]] = []
    anchor: dict[str, str | None] = {}  # node -> the message its children hang from
    for node_id in _parents_first(mapping):
        node = mapping[node_id]
        parent = node.get("parent")
        above = anchor.get(parent) if isinstance(parent, str) else None
        converted = _message(node.get("message"))
        if converted is None:
            anchor[node_id] = above
            continue
        messages.append({"id": node_id, "parent_id": above, **converted})
        anchor[node_id] = node_id
    current = conversation.get("current_node")
    return {
        "format": EXPORT_FORMAT,
        "conversation": {
            "title": str(conversation.get("title") or "") or None,
            "model": None,  # ChatGPT's model names are not this deployment's model groups
            "settings": {},
            "current_leaf_id": anchor.get(current) if isinstance(current, str) else None,
        },
        "messages": messages,
    }


def _parents_first(mapping: dict[str, dict[str, Any]]) -> list[str]:
    """Node ids depth first from the roots, children in their listed order; a node whose
    parent is missing is a root, and a cycle is cut where it closes."""
    roots = [i for i, n in mapping.items() if n.get("parent") not in mapping]
    order: list[str] = []
    seen: set[str] = set()
    stack = list(reversed(roots))
    while stack:
        node_id = stack.pop()
        if node_id in seen or node_id not in mapping:
            continue
        seen.add(node_id)
        order.append(node_id)
        children = mapping[node_id].get("children") or []
        stack.extend(c for c in reversed(children) if isinstance(c, str))
    return order


def _message(message: object) -> dict[str, Any] | None:
    if not isinstance(message, dict):
        return None
    author = message.get("author") or {}
    role = author.get("role") if isinstance(author, dict) else None
    metadata = message.get("metadata") or {}
    if role not in ("user", "assistant", "system") or not isinstance(metadata, dict):
        return None
    if metadata.get("is_visually_hidden_from_conversation"):
        return None
    if message.get("recipient", "all") != "all":  # a call to a tool, not an answer
        return None
    parts = _parts(message.get("content"))
    if not parts:
        return None
    slug = metadata.get("model_slug")
    return {
        "role": role,
        "content": parts,
        "model": slug if role == "assistant" and isinstance(slug, str) else None,
        "status": _STATUS.get(str(message.get("status")), "complete"),
    }


def _parts(content: object) -> list[dict[str, Any]]:
    if not isinstance(content, dict):
        return []
    kind = content.get("content_type")
    raw = content.get("parts") or []
    if kind not in ("text", "multimodal_text") or not isinstance(raw, list):
        return []
    parts: list[dict[str, Any]] = []
    for piece in raw:
        if isinstance(piece, str) and piece.strip():
            parts += text_part(piece)
        elif isinstance(piece, dict) and isinstance(piece.get("asset_pointer"), str):
            parts.append({"type": "image", "url": piece["asset_pointer"]})
    return parts
