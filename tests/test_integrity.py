import torch

from course_utils import integrity


def test_manifest_catches_tampering(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "m.pt").write_bytes(b"weights")
    manifest = integrity.make_manifest(tmp_path)
    assert integrity.verify_manifest(manifest, tmp_path) == []
    (tmp_path / "m.pt").write_bytes(b"weightz")
    (tmp_path / "a.bin").unlink()
    assert integrity.verify_manifest(manifest, tmp_path) == ["a.bin", "m.pt"]
    integrity.save_manifest(manifest, tmp_path / "manifest.json")
    assert integrity.load_manifest(tmp_path / "manifest.json") == manifest


def test_tensor_hash():
    t = torch.arange(6, dtype=torch.uint8)
    assert integrity.sha256_tensor(t) == integrity.sha256_tensor(t.clone())
    assert integrity.sha256_tensor(t) != integrity.sha256_tensor(t.reshape(2, 3))
    u = t.clone()
    u[0] = 1
    assert integrity.sha256_tensor(t) != integrity.sha256_tensor(u)
    assert integrity.sha256_tensor(torch.rand(3)) != integrity.sha256_tensor(torch.rand(3))
