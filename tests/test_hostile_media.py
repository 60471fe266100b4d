"""A decompression bomb (tiny file, huge frames) is refused before a frame is decoded.

Two 16000×16000 PNG frames in a ``.mov`` are ~60 KB on disk and ~1.5 GB decoded to RGB.
``probe``, ``ask`` and ``serve``'s upload each run in a fresh process that reports the CPU
time the call took (all its threads; other processes' load does not count) and how much its
peak memory (``VmHWM``: its own high-water mark; Linux) grew over the call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from videos import png_bomb, png_bomb_behind_small_headers

from o3video.errors import VideoDecodeError
from o3video.video import MAX_SOURCE_PIXELS, check_pixels, probe_video, sample_frames

SCRIPT = textwrap.dedent(
    """
    import http.client, json, sys, threading, time
    from o3video.cli.main import main
    from o3video.families import get_family
    from o3video.serve import make_server
    import o3video.ask, o3video.cli.ask, o3video.cli.probe, o3video.video  # imports paid first

    mode, path = sys.argv[1], sys.argv[2]

    def peak_mb():  # this process's own high-water mark (ru_maxrss counts the parent's too)
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

    class Unused:  # the upload is refused before any model is asked
        name = "unused"
        family = get_family("qwen2_5_vl")

    server = None
    if mode == "serve":
        server = make_server(Unused(), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        body = open(path, "rb").read()
    mb0 = peak_mb()
    t0 = time.process_time()
    message = ""
    if mode == "probe":
        rc = main(["probe", path])
    elif mode == "ask":
        rc = main(["ask", path, "What moves?", "--model", "served", "--backend", "openai",
                   "--base-url", "http://127.0.0.1:9/v1", "--family", "qwen2_5_vl"])
    elif mode == "ask-local":  # a local model: refused before the model (and torch) is loaded
        from o3video.embedded import embedded_model_dir
        rc = main(["ask", path, "What moves?", "--model", str(embedded_model_dir())])
    else:
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.request("POST", "/api/upload?name=bomb.mov", body, {"X-O3video": "1"})
        resp = conn.getresponse()
        rc, message = resp.status, json.loads(resp.read())["error"]
    seconds = time.process_time() - t0
    grew_mb = peak_mb() - mb0
    if server is not None:
        server.shutdown()
        server.server_close()
    print(json.dumps({"rc": rc, "seconds": seconds, "grew_mb": grew_mb, "peak_mb": peak_mb(),
                      "message": message}))
    """
)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.mov")


@pytest.fixture(scope="module")
def hidden_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return png_bomb_behind_small_headers(tmp_path_factory.mktemp("bomb") / "hidden.mov")


def test_the_bomb_is_small_and_its_frames_huge(bomb: Path) -> None:
    assert bomb.stat().st_size < 500_000
    assert probe_video(bomb, max_source_pixels=16000 * 16000).source_wh == (16000, 16000)


def test_sampling_refuses_the_bomb_naming_file_and_size(bomb: Path) -> None:
    with pytest.raises(VideoDecodeError) as info:
        sample_frames(bomb, num_frames=2)
    assert str(info.value).startswith(f"{bomb}: frames of 16000x16000")
    assert "8192x8192" in str(info.value)
    with pytest.raises(VideoDecodeError, match="16000x16000"):
        probe_video(bomb)


def test_the_limit_is_an_option(tmp_path: Path) -> None:
    small = png_bomb(tmp_path / "small.mov", frames=2, side=64)
    assert check_pixels(probe_video(small)).source_wh == (64, 64)
    with pytest.raises(VideoDecodeError, match=r"64x64 .* over the limit of 4000"):
        sample_frames(small, num_frames=2, max_source_pixels=4000)
    assert MAX_SOURCE_PIXELS >= 7680 * 4320  # 8K passes


@pytest.mark.parametrize("mode", ["probe", "ask", "ask-local", "serve"])
def test_the_bomb_is_refused_fast_and_small(
    bomb: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(bomb)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if mode == "serve":
        assert result["rc"] == 400
        assert result["message"].startswith('"bomb.mov" is not a readable video (frames of 16000x')
    else:
        assert result["rc"] == 1
        assert "16000x16000" in done.stderr and "over the limit" in done.stderr
        assert "Traceback" not in done.stderr
    assert result["seconds"] < 1.0, result
    assert result["grew_mb"] < 100, result  # decoding one frame would take 768 MB
    assert result["peak_mb"] < 300, result  # the whole process, imports included


def test_the_limit_is_a_command_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_serve import ScriptedBackend, call, start

    from o3video.cli.main import main
    from o3video.serve import Limits

    small = png_bomb(tmp_path / "small.mov", frames=2, side=64)
    assert main(["probe", str(small)]) == 0
    assert main(["probe", str(small), "--max-source-pixels", "4000"]) == 1
    assert "64x64 (0.0 Mpixel) are over the limit of 4000" in capsys.readouterr().err
    argv = ["ask", str(small), "Q?", "--model", "m", "--backend", "openai", "--base-url"]
    assert main([*argv, "http://127.0.0.1:9/v1", "--max-source-pixels", "4000"]) == 1
    assert "over the limit of 4000" in capsys.readouterr().err
    server = start(ScriptedBackend(), Limits(max_source_pixels=4000))
    try:
        status, _, data = call(server, "POST", "/api/upload?name=s.mov", small.read_bytes())
        assert status == 400 and "over the limit of 4000" in json.loads(data)["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_huge_frames_behind_small_headers_are_not_decoded(hidden_bomb: Path) -> None:
    """The headers pass the check; the decoder refuses to allocate the huge frames."""
    assert probe_video(hidden_bomb).source_wh == (64, 64)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "probe", str(hidden_bomb)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rc"] == 1
    assert f"{hidden_bomb}: decoding failed" in done.stderr
    assert "over 67108864 pixels" in done.stderr
    assert result["seconds"] < 1.0, result
    assert result["grew_mb"] < 100, result
