"""Headless Chromium driven over the Chrome DevTools Protocol, standard library only (so the CI-sized browser test
in ``tests/report/test_browser.py`` installs nothing).

:class:`Chromium` starts ``/usr/bin/chromium`` headless with a fresh ``--user-data-dir`` and
``--remote-debugging-port=0`` (the port is read from ``DevToolsActivePort``), talks to one page over a
minimal RFC 6455 websocket client, and :meth:`Chromium.check_page` opens a ``file:`` URL and returns what a
person would see and what the page did:

* every request the page made (``Network.requestWillBeSent``): anything not ``file:`` / ``data:`` is external;
* console errors (``Runtime.consoleAPICalled`` error / assert, ``Runtime.exceptionThrown``, ``Log.entryAdded``
  errors) and JavaScript dialogs (``Page.javascriptDialogOpening``: an ``alert()`` that ran; dismissed);
* every ``<img>``: decoded when ``complete`` with ``naturalWidth > 0``;
* whether given strings are in the page's text (``innerText``: shown as text, not markup), and how many
  ``<script>`` elements and ``javascript:`` links the DOM holds;
* a full-page PNG screenshot.

Loopback only: the browser is started with networking features off (no background requests, no component
updates, no sync) and only the DevTools port on 127.0.0.1.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("SEGVAL_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-allow-origins=*", "--window-size=1280,900"]


class WebSocket:
    """A minimal websocket client (text frames, masked as a client must; ping answered)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        assert url.startswith("ws://"), url
        hostport, _, path = url[len("ws://"):].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")

    def send(self, text: str) -> None:
        data = text.encode()
        head = bytes([0x81])
        n = len(data)
        head += bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536
                                                   else bytes([0x80 | 127]) + struct.pack(">Q", n))
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + body)

    def _frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        mask = self._read(4) if b1 & 0x80 else None
        data = self._read(n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return b0, data

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("websocket closed by the browser")
        self.buf += chunk

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv(self, wait: float | None = None) -> str | None:
        """The next text message (fragments joined); None when none starts within ``wait`` seconds."""
        if wait is not None and not self.buf and not select.select([self.sock], [], [], wait)[0]:
            return None
        parts: list[bytes] = []
        while True:
            b0, data = self._frame()
            op = b0 & 0x0F
            if op == 0x9:  # ping
                self.sock.sendall(bytes([0x8A, 0x80 | len(data)]) + b"\0\0\0\0" + data)
                continue
            if op == 0x8:
                raise ConnectionError("websocket closed by the browser")
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def close(self) -> None:
        try:
            self.sock.sendall(bytes([0x88, 0x80]) + os.urandom(4))
        except OSError:
            pass
        self.sock.close()


@dataclass
class PageResult:
    """What opening one page showed (see the module doc)."""

    name: str
    url: str
    loaded: bool = False
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    images: int = 0
    images_broken: list[str] = field(default_factory=list)
    texts_missing: list[str] = field(default_factory=list)
    scripts: int = 0
    javascript_links: int = 0
    screenshot: str | None = None

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:"))]

    @property
    def errors(self) -> list[str]:
        """Every problem, one sentence each (empty: the page passed)."""
        out = [] if self.loaded else ["the page did not finish loading"]
        out += [f"external request {u}" for u in self.external_requests]
        out += [f"console error: {e}" for e in self.console_errors]
        out += [f"JavaScript dialog opened: {d!r} (a script from the data ran)" for d in self.dialogs]
        out += [f"image not decoded: {s}" for s in self.images_broken]
        out += [f"text not shown as text: {t!r}" for t in self.texts_missing]
        if self.scripts:
            out.append(f"{self.scripts} <script> element(s) in the DOM")
        if self.javascript_links:
            out.append(f"{self.javascript_links} javascript: link(s) in the DOM")
        return out


class Chromium:
    """One headless Chromium with one page (a context manager; the process group is killed on exit)."""

    def __init__(self, binary: str = CHROMIUM, timeout: float = 30.0) -> None:
        self.binary, self.timeout = binary, timeout
        self.profile = Path(tempfile.mkdtemp(prefix="segval-chromium-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: WebSocket | None = None
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        self.proc = subprocess.Popen([self.binary, *FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                                      "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.binary} did not open its DevTools port within {self.timeout:.0f} s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
        conn.request("GET", "/json/list")
        pages = [t for t in json.loads(conn.getresponse().read()) if t.get("type") == "page"]
        conn.close()
        self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout)
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    # -------------------------------------------------------------------------------- protocol
    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events arriving meanwhile are kept in ``events``)."""
        assert self.ws is not None
        self._id += 1
        my = self._id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)
        raise TimeoutError(f"{method}: no answer within {self.timeout:.0f} s")

    def _event(self, msg: dict[str, Any]) -> None:
        if "method" not in msg:
            return
        self.events.append(msg)
        if msg["method"] == "Page.javascriptDialogOpening":  # a blocked page answers nothing: dismiss it
            self._id += 1
            assert self.ws is not None
            self.ws.send(json.dumps({"id": self._id, "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": False}}))

    def wait_for(self, method: str, timeout: float | None = None) -> bool:
        """Read events until ``method`` arrives (True) or the timeout (False)."""
        assert self.ws is not None
        if any(e["method"] == method for e in self.events):
            return True
        deadline = time.monotonic() + (timeout or self.timeout)
        while (left := deadline - time.monotonic()) > 0:
            text = self.ws.recv(wait=min(left, 1.0))
            if text is None:
                continue
            msg = json.loads(text)
            self._event(msg)
            if msg.get("method") == method:
                return True
        return False

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    # -------------------------------------------------------------------------------- one page
    def check_page(self, name: str, path: str | os.PathLike, *, texts: tuple[str, ...] = (),
                   screenshot: str | os.PathLike | None = None, settle: float = 0.5) -> PageResult:
        """Open ``path`` (a local file) and return what it did (see the module doc)."""
        url = Path(path).resolve().as_uri()
        res = PageResult(name=name, url=url)
        self.events.clear()
        self.call("Page.navigate", url=url)
        res.loaded = self.wait_for("Page.loadEventFired")
        self.wait_for("__settle__", timeout=settle)  # late events (image decoding, timers)
        self._collect(res)
        state = self.evaluate(_PAGE_STATE)
        res.images = len(state["images"])
        res.images_broken = [i["src"] for i in state["images"] if not (i["complete"] and i["w"] > 0)]
        res.scripts, res.javascript_links = state["scripts"], state["jslinks"]
        body = self.evaluate("document.body ? document.body.innerText : ''") or ""
        res.texts_missing = [t for t in texts if t not in body]
        if screenshot is not None:
            res.screenshot = str(self._screenshot(Path(screenshot)))
        return res

    def _collect(self, res: PageResult) -> None:
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Network.requestWillBeSent":
                res.requests.append(p["request"]["url"])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                res.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                res.console_errors.append(str(d.get("exception", {}).get("description") or d.get("text")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                res.console_errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
            elif m == "Page.javascriptDialogOpening":
                res.dialogs.append(p.get("message", ""))

    def _screenshot(self, target: Path) -> Path:
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": max(1, int(size["width"])), "height": max(1, min(int(size["height"]), 12000)),
                "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))
        return target


_PAGE_STATE = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return {
    images: imgs.map(i => ({src: (i.getAttribute('src') || '').slice(0, 60), complete: i.complete, w: i.naturalWidth})),
    scripts: document.querySelectorAll('script').length,
    jslinks: Array.from(document.querySelectorAll('[href],[src]')).filter(
      e => /^\\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('src') || '')).length,
  };
})()"""
