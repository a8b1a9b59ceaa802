"""Bedrock documents and tool-result status: file parts become Converse ``document`` blocks
(format from the media type or the file name, a name Bedrock accepts and no two alike),
what Converse cannot take is named for the gateway to refuse or drop, a failed tool result
carries ``status: "error"``; and the fake refuses the documents and statuses Bedrock
refuses, so the e2e tests mean something."""

from __future__ import annotations

import base64
import copy
from typing import Any

import msgspec
import pytest

from parley.errors import InvalidRequest, UnsupportedParameter
from parley.gateway.params import apply_drop_parts
from parley.providers.bedrock_convert import to_converse
from parley.providers.bedrock_documents import DocumentNames, refused_parts
from parley.schema.chat import ChatRequest, FileData, FilePart
from parley.testing.bedrock import Invalid, check_converse

PDF = base64.b64encode(b"%PDF-1.4 a tiny document").decode()
CSV = base64.b64encode(b"city,temp\nParis,21\n").decode()


def request(**fields: Any) -> ChatRequest:
    return msgspec.convert({"model": "m", **fields}, ChatRequest)


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def file_part(**file: Any) -> dict[str, Any]:
    return {"type": "file", "file": file}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def documents(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [b["document"] for m in body["messages"] for b in m["content"] if "document" in b]


def test_base64_files_become_document_blocks_the_fake_accepts() -> None:
    body = to_converse(
        request(
            messages=[
                user(
                    text("summarise these"),
                    file_part(file_data=f"data:application/pdf;base64,{PDF}", filename="Q3.pdf"),
                    file_part(
                        file_data=f"data:application/octet-stream;base64,{CSV}",
                        filename="temps_2024.csv",
                    ),
                    {
                        "type": "file",
                        "file": {"file_data": f"data:text/plain;base64,{CSV}"},
                        "title": "Notes: v1.2",
                        "cache_control": {"type": "ephemeral"},
                    },
                )
            ]
        )
    )
    content = body["messages"][0]["content"]
    assert content[0] == {"text": "summarise these"}
    assert content[1] == {"document": {"format": "pdf", "name": "Q3", "source": {"bytes": PDF}}}
    # untyped bytes: the extension decides; "_" is not a character Bedrock allows
    assert content[2]["document"]["format"] == "csv"
    assert content[2]["document"]["name"] == "temps 2024"
    assert content[3]["document"]["format"] == "txt"
    assert content[3]["document"]["name"] == "Notes v1 2"  # a title, not a file name
    assert content[4] == {"cachePoint": {"type": "default"}}  # the breakpoint follows it
    check_converse(body)


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        ("application/pdf", "pdf"),
        ("text/csv", "csv"),
        ("application/msword", "doc"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
        ("application/vnd.ms-excel", "xls"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
        ("text/html", "html"),
        ("TEXT/PLAIN", "txt"),
        ("text/markdown", "md"),
    ],
)
def test_each_of_the_nine_formats_from_its_media_type(media_type: str, expected: str) -> None:
    part = file_part(file_data=f"data:{media_type};base64,{PDF}")
    body = to_converse(request(messages=[user(part)]))
    assert documents(body)[0]["format"] == expected
    check_converse(body)


def test_an_s3_document_is_sent_as_its_location() -> None:
    body = to_converse(request(messages=[user(file_part(url="s3://bucket/reports/q3.docx"))]))
    assert documents(body) == [
        {
            "format": "docx",
            "name": "document",
            "source": {"s3Location": {"uri": "s3://bucket/reports/q3.docx"}},
        }
    ]
    check_converse(body)


def test_names_are_unique_across_the_conversation_and_stable() -> None:
    """Bedrock refuses two documents of one name anywhere in a request (a conversation
    replays every earlier document), so repeats are numbered in order."""
    pdf = f"data:application/pdf;base64,{PDF}"
    messages = [
        user(text("first"), file_part(file_data=pdf, filename="report.pdf")),
        {"role": "assistant", "content": "read it"},
        user(
            text("and these"),
            file_part(file_data=pdf, filename="Report.pdf"),
            file_part(file_data=pdf),
            file_part(file_data=pdf, filename="???.pdf"),
        ),
    ]
    body = to_converse(request(messages=messages))
    assert [d["name"] for d in documents(body)] == [
        "report",
        "Report (2)",
        "document",
        "document (2)",
    ]
    assert to_converse(request(messages=messages)) == body  # the same names every time
    check_converse(body)


def test_a_long_name_keeps_within_bedrocks_limit_with_its_number() -> None:
    names = DocumentNames()
    long = FilePart(FileData(file_data="x", filename="a" * 300 + ".pdf"))
    first, second = names.name_for(long), names.name_for(long)
    assert first == "a" * 200
    assert second == "a" * 196 + " (2)"
    assert len(second) == 200


@pytest.mark.parametrize(
    ("file", "words"),
    [
        ({"url": "https://example.com/a.pdf"}, "does not fetch document URLs"),
        ({"file_id": "file-abc123"}, "cannot read a file by id"),
        ({"file_data": f"data:application/zip;base64,{PDF}"}, "not application/zip"),
        ({"file_data": f"data:image/png;base64,{PDF}"}, "not image/png"),
        ({"file_data": f"data:application/octet-stream;base64,{PDF}"}, "neither the media"),
        ({"file_data": "https://example.com/a.pdf"}, "must be a base64 data: URL"),
        ({"url": "s3://bucket/archive.tar"}, "neither the media"),
        ({}, "needs file_data, url or file_id"),
    ],
)
def test_parts_bedrock_cannot_take_are_named_with_the_reason(
    file: dict[str, Any], words: str
) -> None:
    chat = request(
        messages=[
            {"role": "system", "content": "be brief"},
            user(text("look"), {"type": "file", "file": file}),
        ]
    )
    [refused] = refused_parts(chat)
    assert refused.param == "messages[1].content[1]"
    assert words in refused.reason
    with pytest.raises(InvalidRequest) as info:  # never sent half-translated either
        to_converse(chat)
    assert info.value.param == "messages[1].content[1]"


def test_a_refusal_names_the_document_when_it_has_a_name() -> None:
    chat = request(messages=[user(file_part(file_id="file-1", filename="contract.pdf"))])
    assert "(document 'contract.pdf')" in refused_parts(chat)[0].reason


def test_translatable_parts_are_not_refused() -> None:
    chat = request(
        messages=[
            user(
                text("hi"),
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                file_part(file_data=f"data:application/pdf;base64,{PDF}"),
                file_part(url="s3://b/k.pdf"),
            ),
            {"role": "user", "content": "plain"},
        ]
    )
    assert refused_parts(chat) == []


def test_without_drop_params_the_first_refused_part_is_a_400_naming_it() -> None:
    chat = request(
        messages=[
            user(text("a"), file_part(url="https://x.test/a.pdf")),
            {"role": "assistant", "content": "ok"},
            user(file_part(file_id="file-2")),
        ]
    )
    with pytest.raises(UnsupportedParameter) as info:
        apply_drop_parts(chat, refused_parts(chat), drop=False, deployment="bedrock-east")
    assert info.value.code == "unsupported_parameter"
    assert info.value.status_code == 400
    assert info.value.param == "messages[0].content[1]"
    assert "does not fetch document URLs" in info.value.message
    assert "bedrock-east" in info.value.message
    assert "drop_params" in info.value.message


def test_with_drop_params_refused_parts_are_removed_and_reported() -> None:
    pdf = file_part(file_data=f"data:application/pdf;base64,{PDF}", filename="keep.pdf")
    chat = request(
        messages=[
            user(text("a"), file_part(url="https://x.test/a.pdf"), pdf),
            {"role": "assistant", "content": "ok"},
            user(file_part(file_id="file-2")),
            {"role": "assistant", "content": "still here"},
            {"role": "user", "content": "last"},
        ]
    )
    kept, dropped = apply_drop_parts(chat, refused_parts(chat), drop=True, deployment="b")
    assert dropped == ["messages[0].content[1]", "messages[2].content[0]"]
    assert refused_parts(kept) == []
    body = to_converse(kept)
    assert body["messages"][0]["content"][0] == {"text": "a"}
    assert [d["name"] for d in documents(body)] == ["keep"]
    # the user turn left empty sends no turn; the assistant turns around it merge
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    check_converse(body)
    assert apply_drop_parts(kept, [], drop=False, deployment="b") == (kept, [])


def _tool_turns(**tool: Any) -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    return [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "no such city", **tool},
    ]


@pytest.mark.parametrize(("is_error", "status"), [(True, "error"), (False, None), (None, None)])
def test_a_failed_tool_result_is_sent_with_status_error(
    is_error: bool | None, status: str | None
) -> None:
    tool = {} if is_error is None else {"is_error": is_error}
    body = to_converse(request(messages=_tool_turns(**tool)))
    result = body["messages"][2]["content"][0]["toolResult"]
    assert result.get("status") == status
    assert result["content"] == [{"text": "no such city"}]
    check_converse(body)


def _with_document(**document: Any) -> dict[str, Any]:
    block = {"format": "pdf", "name": "report", "source": {"bytes": PDF}, **document}
    return {"messages": [{"role": "user", "content": [{"text": "hi"}, {"document": block}]}]}


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"format": "pptx"}, "document.format"),
        ({"format": None}, "document.format"),
        ({"name": "report.pdf"}, "file name"),
        ({"name": "my_report"}, "file name"),
        ({"name": "two  spaces"}, "file name"),
        ({"name": "tab\there"}, "file name"),
        ({"name": ""}, "file name"),
        ({"name": "r" * 201}, "file name"),
        ({"name": "Bericht über"}, "file name"),
        ({"source": {"bytes": ""}}, "must not be empty"),
        ({"source": {"bytes": "not base64!"}}, "not base64"),
        ({"source": {"bytes": PDF, "text": "x"}}, "exactly one of"),
        ({"source": {"url": "https://x.test/a.pdf"}}, "exactly one of"),
        ({"title": "Q3"}, "only format, name"),
    ],
)
def test_the_fake_refuses_documents_bedrock_refuses(document: dict[str, Any], words: str) -> None:
    body = _with_document(**document)
    if document.get("format", "") is None:
        del body["messages"][0]["content"][1]["document"]["format"]
    with pytest.raises(Invalid) as info:
        check_converse(body)
    assert words in str(info.value)


def test_the_fake_takes_the_names_bedrock_allows_and_refuses_a_repeat() -> None:
    body = _with_document(name="Q3 report (final) [v2]-draft")
    check_converse(body)
    again = copy.deepcopy(body["messages"][0]["content"][1])
    body["messages"] += [
        {"role": "assistant", "content": [{"text": "ok"}]},
        {"role": "user", "content": [again]},
    ]
    with pytest.raises(Invalid, match="same name"):
        check_converse(body)


@pytest.mark.parametrize(
    ("result", "words"),
    [
        ({"status": "failed"}, "enum value set"),
        ({"status": "ERROR"}, "enum value set"),
        ({"status": "error", "content": []}, "cannot be empty"),
        ({"isError": True}, "extraneous key [isError]"),
    ],
)
def test_the_fake_refuses_tool_result_statuses_bedrock_refuses(
    result: dict[str, Any], words: str
) -> None:
    body = to_converse(request(messages=_tool_turns(is_error=True)))
    body["messages"][2]["content"][0]["toolResult"].update(result)
    with pytest.raises(Invalid) as info:
        check_converse(body)
    assert words in str(info.value)
    body["messages"][2]["content"][0]["toolResult"] = {
        "toolUseId": "c1",
        "content": [{"text": "fine"}],
        "status": "success",
    }
    check_converse(body)
