"""The chat at the technician's command line: typed lines go out as chat messages, the
other side's messages are shown, the end of input or of the chat ends it, and garbage
from the other side ends it with exit code 1."""

from __future__ import annotations

import asyncio
import os

from fjernhjelp.streams.chat.technician import run_chat_client
from fjernhjelp.streams.chat.wire import message_for, parse_message
from fjernhjelp.tunnel import ChannelClosed, memory_pair
from tests.asyncrun import run_async


def test_lines_go_out_and_answers_are_shown_until_input_ends() -> None:
    async def scenario() -> tuple[int, list[str], list[str]]:
        ours, theirs = memory_pair()
        read_fd, write_fd = os.pipe()
        shown: list[str] = []
        chat = asyncio.create_task(run_chat_client(ours, read_fd, shown.append))
        os.write(write_fd, "Hei! Ser du vinduet?\n\nBlåbær".encode())
        got = [parse_message(await theirs.recv())]
        await theirs.send(message_for("Ja, jeg ser det."))
        os.write(write_fd, "syltetøy\n".encode())
        got.append(parse_message(await theirs.recv()))
        os.close(write_fd)  # Ctrl-D
        code = await asyncio.wait_for(chat, 30)
        os.close(read_fd)
        try:
            await theirs.recv()
        except ChannelClosed:
            pass
        else:
            raise AssertionError("the chat stayed open after the end of input")
        return code, got, shown

    code, sent, shown = run_async(scenario())
    assert code == 0
    # The empty line is not sent; a line arriving in two pieces is one message.
    assert sent == ["Hei! Ser du vinduet?", "Blåbærsyltetøy"]
    assert shown == ["Ja, jeg ser det."]


def test_the_other_side_ending_the_chat_ends_it_here() -> None:
    async def scenario() -> int:
        ours, theirs = memory_pair()
        read_fd, write_fd = os.pipe()
        chat = asyncio.create_task(run_chat_client(ours, read_fd, lambda _text: None))
        await theirs.close()
        try:
            return await asyncio.wait_for(chat, 30)
        finally:
            os.close(read_fd)
            os.close(write_fd)

    assert run_async(scenario()) == 0


def test_something_that_is_not_a_chat_message_ends_it_with_an_error() -> None:
    async def scenario() -> int:
        ours, theirs = memory_pair()
        read_fd, write_fd = os.pipe()
        chat = asyncio.create_task(run_chat_client(ours, read_fd, lambda _text: None))
        await theirs.send(b"\xff not json")
        try:
            return await asyncio.wait_for(chat, 30)
        finally:
            os.close(read_fd)
            os.close(write_fd)

    assert run_async(scenario()) == 1
