// AUFX Live tab: camera -> binary WebSocket -> edited frame drawn on a canvas (protocol: aufx/ui/live_stream.py).
// Runs as the gr.HTML component's js_on_load, so `element` is the component's root. At most MAX_INFLIGHT frames
// are on their way at once; a camera frame that finds them all busy is skipped (drop, don't delay).
const MAX_INFLIGHT = 2, WIDTH = 640, HEIGHT = 480, QUALITY = 0.8, FPS_WINDOW_MS = 2000;
const FACE = 1, NEEDS_PORTRAIT = 2, DROPPED = 4;
const part = (role) => element.querySelector(`[data-role="${role}"]`);
const view = part("view"), cam = part("cam"), stage = part("stage"), fpsOut = part("fps"), note = part("note");
const viewCtx = view.getContext("2d");
const grab = document.createElement("canvas");
grab.width = WIDTH;
grab.height = HEIGHT;
const grabCtx = grab.getContext("2d");
grabCtx.setTransform(-1, 0, 0, 1, WIDTH, 0); // selfie view: your left hand on the left of the screen

let ws = null, camera = null, inflight = 0, lastShown = -1, flags = 0, runs = 0;
let painted = [], shown = 0, sent = 0, dropped = 0, skipped = 0, readout = null; // painted: {at, serverMs, latencyMs}

function recent() {
  const now = performance.now();
  painted = painted.filter((p) => now - p.at <= FPS_WINDOW_MS);
  return painted;
}

function fps() {
  const p = recent(), now = performance.now();
  if (p.length < 2 || now - p[p.length - 1].at > 1000) return 0;
  return ((p.length - 1) * 1000) / (p[p.length - 1].at - p[0].at);
}

function median(key) {
  const v = recent().map((p) => p[key]).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : 0;
}

function showRate() {
  const face = flags & NEEDS_PORTRAIT ? " · Puppet mode needs a portrait: load one below"
    : flags & FACE ? "" : " · no face in view";
  fpsOut.textContent = `${fps().toFixed(1)} fps · ${median("serverMs").toFixed(0)} ms server · ` +
    `${median("latencyMs").toFixed(0)} ms camera to screen${face}`;
}

function send(t) {
  grab.toBlob((jpeg) => {
    if (!ws || ws.readyState !== WebSocket.OPEN || !jpeg) {
      inflight = Math.max(0, inflight - 1);
      return;
    }
    const head = new DataView(new ArrayBuffer(8));
    head.setFloat64(0, t, true);
    ws.send(new Blob([head, jpeg]));
    sent++;
  }, "image/jpeg", QUALITY);
}

function onCameraFrame(run) {
  if (!ws || run !== runs) return; // a stopped stream's callbacks end here, so a restart never grabs twice
  if (ws.readyState === WebSocket.OPEN) {
    if (inflight < MAX_INFLIGHT) {
      inflight++;
      grabCtx.drawImage(cam, 0, 0, WIDTH, HEIGHT);
      send(performance.now());
    } else {
      skipped++;
    }
  }
  nextCameraFrame(run);
}

function nextCameraFrame(run) {
  if (cam.requestVideoFrameCallback) cam.requestVideoFrameCallback(() => onCameraFrame(run));
  else requestAnimationFrame(() => onCameraFrame(run));
}

async function onResult(event) {
  inflight = Math.max(0, inflight - 1);
  const head = new DataView(event.data, 0, 16);
  const t = head.getFloat64(0, true);
  if (head.getUint32(12, true) & DROPPED) {
    dropped++;
    return;
  }
  const bitmap = await createImageBitmap(new Blob([new Uint8Array(event.data, 16)], { type: "image/jpeg" }));
  if (t < lastShown) { // a later frame was decoded first: never step back in time
    bitmap.close();
    return;
  }
  lastShown = t;
  if (view.width !== bitmap.width || view.height !== bitmap.height) {
    view.width = bitmap.width;
    view.height = bitmap.height;
  }
  viewCtx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const now = performance.now();
  painted.push({ at: now, serverMs: head.getFloat32(8, true), latencyMs: now - t });
  shown++;
  flags = head.getUint32(12, true);
}

function finish(reason) {
  if (camera) camera.getTracks().forEach((track) => track.stop());
  camera = null;
  cam.srcObject = null;
  ws = null;
  inflight = 0;
  painted = [];
  clearInterval(readout);
  fpsOut.textContent = `0.0 fps · ${reason}`;
  note.textContent = reason === "stopped" ? "Stopped." : `Stopped: ${reason}.`;
}

async function start(token) {
  if (ws) stop();
  if (!token) return; // the server refused (its message is shown beside the Start button)
  const url = new URL("aufx/live/ws", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", token);
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  ws = socket;
  socket.onmessage = onResult;
  socket.onclose = (event) => { if (ws === socket) finish(event.reason || "connection closed"); };
  if (!navigator.mediaDevices) { // browsers offer cameras to secure pages only
    socket.close(1000, "no camera");
    finish("this browser offers the camera only to https:// or localhost pages");
    return;
  }
  try {
    camera = await navigator.mediaDevices.getUserMedia(
      { video: { width: { ideal: WIDTH }, height: { ideal: HEIGHT }, frameRate: { ideal: 30 } }, audio: false });
  } catch (err) {
    socket.close(1000, "no camera");
    finish(`the camera could not be opened (${err.name}: ${err.message})`);
    return;
  }
  if (ws !== socket) { // stopped while the browser asked for the camera
    camera.getTracks().forEach((track) => track.stop());
    return;
  }
  cam.srcObject = camera;
  await cam.play();
  lastShown = -1;
  sent = shown = dropped = skipped = 0;
  note.textContent = "Streaming.";
  readout = setInterval(showRate, 250);
  nextCameraFrame(++runs);
}

function stop() {
  const socket = ws;
  finish("stopped");
  if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "stopped");
}

part("present").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else stage.requestFullscreen().catch((err) => { note.textContent = `Full screen refused: ${err.message}`; });
});
view.addEventListener("dblclick", () => part("present").click());

window.aufxLive = {
  start, stop,
  // frames sent, drawn, answered as dropped by the server, skipped here (two in flight); medians over 2 s
  stats: () => ({ fps: fps(), sent, shown, dropped, skipped, serverMs: median("serverMs"),
    latencyMs: median("latencyMs"), streaming: ws !== null }),
};
