"use strict";
// The live page: one WebSocket to /v1/stream (protocol: infer/server/stream.py). At most one
// job is in flight: the next frame is captured only when the previous answer has arrived, so
// what is sent is always the newest frame and nothing queues anywhere.

const $ = (id) => document.getElementById(id);
const WINDOW_MS = 2000;  // frames/s over the last two seconds
const state = {
  hello: null, ws: null, inFlight: false, sentAt: 0, paused: false, frames: 0,
  arrivals: [], latencies: [], meta: null, resultUrl: null, source: null, stream: null,
};

function status(text) { $("status").textContent = text; }

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  ws.binaryType = "blob";
  ws.onmessage = (event) => (typeof event.data === "string" ? onText(JSON.parse(event.data)) : onImage(event.data));
  ws.onclose = () => { state.inFlight = false; status("disconnected from the server: reload to reconnect"); };
  state.ws = ws;
}

function onText(message) {
  if (message.type === "hello") { setup(message); return; }
  if (message.type === "result") { state.meta = message; return; }
  if (message.type === "error") {
    status(`${message.kind}: ${message.detail}`);
    if (message.kind !== "flood") { state.inFlight = false; scheduleNext(); }  // that job has ended
  }
}

function onImage(blob) {
  const now = performance.now();
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  $("result").src = state.resultUrl;
  state.frames += 1;
  state.arrivals.push(now);
  state.latencies.push(now - state.sentAt);
  if (state.latencies.length > 30) state.latencies.shift();
  const meta = state.meta || {};
  $("frames").textContent = state.frames;
  document.body.dataset.frames = String(state.frames);
  $("latency").textContent = (state.latencies.reduce((a, b) => a + b, 0) / state.latencies.length).toFixed(0);
  $("server").textContent = meta.server_ms !== undefined ? meta.server_ms.toFixed(1) : "-";
  $("dropped").textContent = meta.dropped || 0;
  if (meta.seed !== undefined) $("result-caption").textContent = `samples, seed ${meta.seed}`;
  updateFps();
  state.inFlight = false;
  if (state.hello.kind === "noise") {
    if ($("live").checked) { $("seed").value = Number($("seed").value) + 1; requestSample(); }
  } else {
    scheduleNext();
  }
}

function updateFps() {
  const now = performance.now();
  state.arrivals = state.arrivals.filter((t) => now - t <= WINDOW_MS);
  const span = state.arrivals.length > 1 ? Math.max(now - state.arrivals[0], 1) : WINDOW_MS;
  const fps = state.arrivals.length > 1 ? (state.arrivals.length - 1) * 1000 / span : 0;
  $("fps").textContent = fps.toFixed(1);
  document.body.dataset.fps = fps.toFixed(2);
}

// ---- the model's controls ---------------------------------------------------------------------

function setup(hello) {
  state.hello = hello;
  $("model").textContent = `${hello.artifact} (${hello.variant}, ${hello.kind}) on ${hello.backend}`;
  if (hello.label) fillLabels(hello.label, hello.kind === "noise");
  if (hello.kind === "noise") {
    $("sample-controls").hidden = false;
    $("n").max = hello.max_n;
    $("n").value = Math.min(16, hello.max_n);
    $("sample").onclick = requestSample;
    $("live").onchange = () => { if ($("live").checked) requestSample(); };
    requestSample();
    return;
  }
  $("translate-controls").hidden = false;
  $("original-box").hidden = false;
  fillSizes(hello.image);
  $("camera").onclick = startCamera;
  $("file").onchange = () => { if ($("file").files.length) useFile($("file").files[0]); };
  $("pause").onclick = () => {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    scheduleNext();
  };
  startCamera();
}

function fillLabels(label, cycle) {
  const select = $("label");
  if (cycle) select.add(new Option("cycle through", ""));
  for (let i = 0; i < (label.num_classes || 0); i += 1) {
    select.add(new Option(label.class_names ? `${i}: ${label.class_names[i]}` : String(i), String(i)));
  }
  $("label-name").textContent = cycle ? "class" : "domain";  // a translator's label is its target domain
  $("label-box").hidden = false;
  select.onchange = () => {
    if (state.hello.kind === "translate") state.ws.send(JSON.stringify({ type: "settings", label: chosenLabel() }));
    else requestSample();
  };
}

function chosenLabel() {
  const value = $("label").value;
  return value === "" ? null : Number(value);
}

function fillSizes(image) {
  const own = image.default_size ? Math.max(...image.default_size) : 256;
  const limit = image.max_side || 4096;
  const sizes = [...new Set([own, 128, 256, 512])].filter((s) => s <= limit).sort((a, b) => a - b);
  for (const side of sizes) $("size").add(new Option(side === own ? `${side} (the model's)` : String(side), side));
  $("size").value = String(own);
}

// ---- sources: the camera, or a video or image file ------------------------------------------

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    status("no camera here: browsers allow it on localhost or https only (an SSH tunnel to localhost works); "
           + "pick a video file instead");
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    stopStream();
    state.stream = stream;
    const video = $("video");
    video.removeAttribute("src");
    video.srcObject = stream;
    await video.play();
    state.source = video;
    status("");
    scheduleNext();
  } catch (error) {
    status(`camera: ${error.name}: ${error.message}; pick a video file instead`);
  }
}

function useFile(file) {
  stopStream();
  const url = URL.createObjectURL(file);
  if (file.type.startsWith("image/")) {
    const image = new Image();
    image.onload = () => { state.source = image; scheduleNext(); };
    image.src = url;
    return;
  }
  const video = $("video");
  video.srcObject = null;
  video.src = url;
  video.play().then(() => { state.source = video; scheduleNext(); }, (e) => status(`video: ${e.message}`));
}

function stopStream() {
  if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
  state.stream = null;
}

function sourceSize(source) {
  if (source instanceof HTMLVideoElement) return source.readyState >= 2 ? [source.videoWidth, source.videoHeight] : [0, 0];
  return [source.naturalWidth, source.naturalHeight];
}

// ---- sending ------------------------------------------------------------------------------------

function scheduleNext() { requestAnimationFrame(sendFrame); }

function sendFrame() {
  const ws = state.ws;
  if (state.inFlight || state.paused || !state.source || !ws || ws.readyState !== WebSocket.OPEN) return;
  const [w, h] = sourceSize(state.source);
  if (!w || !h) { setTimeout(scheduleNext, 50); return; }
  const scale = Number($("size").value) / Math.max(w, h);
  const canvas = $("original");
  canvas.width = Math.max(1, Math.round(w * scale));
  canvas.height = Math.max(1, Math.round(h * scale));
  canvas.getContext("2d").drawImage(state.source, 0, 0, canvas.width, canvas.height);
  state.inFlight = true;
  state.sentAt = performance.now();  // latency: from capture to the translation on screen
  canvas.toBlob((blob) => {
    if (blob && ws.readyState === WebSocket.OPEN) ws.send(blob);
    else state.inFlight = false;
  }, "image/jpeg", 0.9);
}

function requestSample() {
  const ws = state.ws;
  if (state.inFlight || !ws || ws.readyState !== WebSocket.OPEN) return;
  const n = Math.min(Math.max(1, Number($("n").value) || 1), state.hello.max_n);
  const message = { type: "sample", n, seed: Math.max(0, Math.floor(Number($("seed").value) || 0)) };
  if (state.hello.label) message.label = chosenLabel();
  state.inFlight = true;
  state.sentAt = performance.now();
  ws.send(JSON.stringify(message));
}

setInterval(updateFps, 500);
connect();
