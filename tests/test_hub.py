import pickle

import pytest
import torch

from course_utils import hub
from course_utils.integrity import sha256_file

WEIGHTS = {"w": torch.ones(2, 2)}


def test_payload_runs_only_on_unsafe_load(tmp_path):
    path = hub.save_trojaned_checkpoint(WEIGHTS, tmp_path / "m.pt", tmp_path / "ran.txt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not (tmp_path / "ran.txt").exists()
    loaded = torch.load(path, weights_only=False)
    assert torch.equal(loaded["state_dict"]["w"], WEIGHTS["w"])
    assert (tmp_path / "ran.txt").read_text() == hub.PAYLOAD_TEXT


def test_load_verified(tmp_path):
    path = hub.save_checkpoint(WEIGHTS, tmp_path / "m.pt")
    card = {"sha256": sha256_file(path)}
    assert torch.equal(hub.load_verified(path, card)["w"], WEIGHTS["w"])
    with pytest.raises(ValueError, match="does not match"):
        hub.load_verified(hub.save_checkpoint({"w": torch.zeros(2, 2)}, tmp_path / "x.pt"), card)
    with pytest.raises(ValueError, match="sha256"):
        hub.load_verified(path, {})


def test_safetensors_round_trip_and_refusals(tmp_path):
    pytest.importorskip("safetensors")
    path = hub.save_safetensors(WEIGHTS, tmp_path / "m.safetensors")
    assert torch.equal(hub.load_safetensors(path)["w"], WEIGHTS["w"])
    with pytest.raises(ValueError):
        hub.save_safetensors({"w": torch.ones(1), "x": hub.Payload(tmp_path / "ran.txt")}, tmp_path / "bad.safetensors")
    trojan = hub.save_trojaned_checkpoint(WEIGHTS, tmp_path / "m.pt", tmp_path / "ran.txt")
    with pytest.raises(Exception, match="header"):
        hub.load_safetensors(trojan)
    assert not (tmp_path / "ran.txt").exists()


def test_cards_record_the_hash_and_refuse_empty_fields(tmp_path):
    path = hub.save_checkpoint(WEIGHTS, tmp_path / "m.pt")
    card = hub.model_card("m", path, data="d", provenance="p", metrics={"CA": "1"}, checks={"AC": "none"},
                          intended_use="u", limitations="l")
    assert card["sha256"] == sha256_file(path) and "- **sha256**" in hub.as_markdown(card)
    with pytest.raises(ValueError, match="check"):
        hub.model_card("m", path, data="d", provenance="p", metrics={}, checks={}, intended_use="u", limitations="")
    with pytest.raises(ValueError, match="licence"):
        hub.datasheet("d", source="s", licence="", collection="c", composition="c", preprocessing="p",
                      known_risks="r", fingerprint="f")
