"""The simulated cards' answers, frame by frame, and the card files."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from farebox.agent.presentation import CardTechnology
from farebox.simulators.card import Card, CardEmulator, load_cards
from farebox.simulators.cards import NDEF_AID_V2, Type2Card, Type3Card, Type4Card

UID7 = bytes.fromhex("04a1b2c3d4e5f6")
IDM = bytes.fromhex("012e4cd1a2b3c4d5")


def test_an_ntag213_lays_out_uid_checks_and_ndef_as_the_datasheet_says() -> None:
    card = Type2Card(UID7, b"\xd0\x00\x00")
    page0 = card.answer(b"\x30\x00")
    assert page0 is not None
    assert page0[:3] == UID7[:3]
    assert page0[3] == 0x88 ^ UID7[0] ^ UID7[1] ^ UID7[2]  # BCC0 includes the cascade tag
    assert page0[12:16] == b"\xe1\x10\x12\x00"  # capability container
    assert card.answer(b"\x30\x04")[:6] == b"\x03\x03\xd0\x00\x00\xfe"  # type: ignore[index]
    assert card.answer(b"\x30\x2c")[:4] == bytes(4)  # type: ignore[index]  # wraps at the end
    assert card.answer(b"\x30\x2d") == b"\x00"  # NAK past the end
    assert card.answer(b"\x1a\x00") is None  # no Ultralight C authentication
    with pytest.raises(ValueError, match="holds 144 bytes"):
        Type2Card(UID7, bytes(200))


def test_a_felica_card_refuses_other_services_blocks_and_idms() -> None:
    card = Type3Card(IDM, b"\xd0\x00\x00")
    read = bytes([0x06]) + IDM + b"\x01\x0b\x00\x01\x80\x00"
    answer = card.answer(bytes([len(read) + 1]) + read)
    assert answer is not None
    assert answer[10:13] == b"\x00\x00\x01"
    assert answer[13:14] == b"\x10"  # attribute block: mapping version 1.0
    other_service = bytes([0x06]) + IDM + b"\x01\x4b\x00\x01\x80\x00"
    assert card.answer(bytes([len(other_service) + 1]) + other_service)[10:12] == b"\x01\xa6"  # type: ignore[index]
    far_block = bytes([0x06]) + IDM + b"\x01\x0b\x00\x01\x80\x09"
    assert card.answer(bytes([len(far_block) + 1]) + far_block)[10:12] == b"\x01\xa8"  # type: ignore[index]
    wrong_idm = bytes([0x06]) + bytes(8) + b"\x01\x0b\x00\x01\x80\x00"
    assert card.answer(bytes([len(wrong_idm) + 1]) + wrong_idm) is None
    assert card.polled(b"\x06\x00\x88\xb4\x00\x00") is None  # another system code


def test_an_iso_dep_card_answers_only_applications_it_has() -> None:
    card = Type4Card(UID7, b"\xd0\x00\x00", None, b"\xf0\x01")
    assert card.answer(b"\xe0\x80") == bytes.fromhex("0578808000")
    assert card.answer(b"\x02\x00\xa4\x04\x00\x02\xf0\x01\x00") == b"\x02\x6a\x82"
    assert card.answer(b"\x03\x00\xb0\x00\x00\x02") == b"\x03\x6d\x00"  # nothing selected
    select = b"\x00\xa4\x04\x00" + bytes([len(NDEF_AID_V2)]) + NDEF_AID_V2
    assert card.answer(b"\x02" + select) == b"\x02\x90\x00"
    assert card.answer(b"\x03\x00\xa4\x00\x0c\x02\xe1\x05") == b"\x03\x6a\x82"
    assert card.answer(b"\xb2") == b"\xa2"  # presence check
    assert card.answer(b"\xc2") == b"\xc2"


@pytest.mark.parametrize(
    ("technology", "uid", "apdu", "reason"),
    [
        (CardTechnology.TYPE2, bytes(4), None, "7-byte UID"),
        (CardTechnology.TYPE3, bytes(7), None, "8-byte UID"),
        (CardTechnology.TYPE3, b"\x01\xfe" + bytes(6), None, "peer-to-peer"),
        (CardTechnology.TYPE2, UID7, b"x", "only a Type 4 card answers"),
    ],
)
def test_impossible_cards_are_refused(
    technology: CardTechnology, uid: bytes, apdu: bytes | None, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        Card(technology, uid, apdu=apdu)


@pytest.mark.parametrize(
    ("technology", "uid"), [(CardTechnology.TYPE2, UID7), (CardTechnology.TYPE4, UID7)]
)
def test_only_a_type_4_card_with_a_4_byte_pupi_speaks_nfc_b(
    technology: CardTechnology, uid: bytes
) -> None:
    with pytest.raises(ValueError, match="NFC-B"):
        Card(technology, uid, type_b=True)


def test_card_files_hold_one_card_or_a_list(tmp_path: Path) -> None:
    one = {"technology": "type3", "uid": IDM.hex(), "payload": "FB1:X"}
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "two.json").write_text(
        json.dumps([one, one | {"technology": "type2", "uid": UID7.hex()}])
    )
    assert load_cards(tmp_path / "one.json") == [Card(CardTechnology.TYPE3, IDM, b"FB1:X")]
    assert [card.technology for card in load_cards(tmp_path / "two.json")] == [
        CardTechnology.TYPE3,
        CardTechnology.TYPE2,
    ]


def test_the_emulator_refuses_a_port_nfcpy_would_read_back_as_a_service_name() -> None:
    # nfcpy's UDP driver reads its port back by name: a named port (60179 is "fido") fails.
    named = next(
        (
            port
            for port in range(1024, 65536)
            if not socket.getnameinfo(("127.0.0.1", port), socket.NI_NUMERICHOST)[1].isdigit()
        ),
        None,
    )
    if named is None:
        pytest.skip("no port has a service name here (no /etc/services): nothing to refuse")
    with pytest.raises(ValueError, match="service name"):
        CardEmulator(port=named)
