"use strict";
// The page: upload or pick a photo (its aligned face is shown, or why there is none), choose the words
// (emotion tags allowed) or a recording, the emotion and options, follow the job's steps, play the video
// and show its self-check (each segment's emotion asked for and shown); the gallery and the model panel.
// On a server with tokens (GET /api/session says so) the page asks for the token once, keeps it in this
// tab (sessionStorage) and sends it with every call; faces and videos are then fetched with it and shown
// from blob URLs, since an <img> or <video> cannot send the header itself.
// A job's video plays while it is being made: GET /api/videos/{id}/live sends a fragmented MP4 as it grows,
// appended piece by piece to the player through Media Source Extensions (no library); the finished mp4 is
// the download. ``window.liveStats`` keeps the time from "Make the video" to the first frame playing (and to
// the steps before it: the job posted, the stream's first bytes, its first fragment buffered, play() called),
// and how often playback then waited for data (a stall).

const $ = (id) => document.getElementById(id);
const STEPS = ["queued", "tts", "face", "generate", "encode"];
const EMOTION_NAMES = {ANG: "anger", DIS: "disgust", FEA: "fear", HAP: "happiness", NEU: "neutral", SAD: "sadness"};
let photoId = null;
let recording = null;  // a File: recorded speech instead of the text
let emotion = "HAP";
let watching = null;
let live = null;  // the live playback in progress: {id, controller, buffer, polls, started, complete, pace}
const PLAY_AT_ONCE_PACE = 1.5;  // (``readyToPlay``)
const madePace = {false: null, true: null};  // (``learnPace``)
window.liveStats = {submitted: null, posted: null, firstBytes: null, buffered: null, started: null, playing: null,
  stalls: 0};
const TOKEN_KEY = "synthtext-token";
let auth = false;  // whether the server needs a token
let token = sessionStorage.getItem(TOKEN_KEY);
const blobs = new Map();  // path -> blob URL of a face or video fetched with the token

function withToken(options) {
  const headers = {...((options && options.headers) || {})};
  if (token) headers.Authorization = `Bearer ${token}`;
  return {...(options || {}), headers};
}

async function api(path, options) {
  const response = await fetch(path, withToken(options));
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    let detail = body && body.detail ? body.detail : response.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    if (response.status === 429) detail += ` (retry in ${response.headers.get("Retry-After")} s)`;
    if (response.status === 401) askToken(detail);
    throw new Error(detail);
  }
  return body;
}

// A face or a video as an element can show it: the path itself, or on a server with tokens a blob URL of
// what was fetched with the token.
async function mediaUrl(path) {
  if (!auth) return path;
  if (!blobs.has(path)) {
    const response = await fetch(path, withToken());
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    blobs.set(path, URL.createObjectURL(await response.blob()));
  }
  return blobs.get(path);
}

// ---------------------------------------------------------------- the token

function askToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  $("token-form").hidden = false;
  show($("token-error"), message || "");
  $("token").focus();
}

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  try {
    await api("/api/session");
  } catch (error) {
    return;  // askToken showed why
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  $("token-form").hidden = true;
  start();
});

async function start() {
  let session;
  try {
    session = await api("/api/session");
  } catch (error) {
    return;  // a stored token the server no longer knows: asked again
  }
  auth = session.auth;
  if (auth && !session.user) {
    askToken("");
    return;
  }
  $("user").textContent = session.user ? `signed in as ${session.user}${session.admin ? " (admin: all videos)" : ""}`
    : "";
  loadGallery();
  loadModel();
}

function show(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

// ---------------------------------------------------------------- the photo

async function sendPhoto(form) {
  show($("photo-error"), "");
  $("face-box").hidden = true;
  photoId = null;
  updateSubmit();
  $("face-note").textContent = "";
  try {
    const photo = await api("/api/photos", {method: "POST", body: form});
    photoId = photo.photo;
    $("face").src = await mediaUrl(photo.face_url);
    $("face-note").textContent = `Face found (${photo.width}x${photo.height} photo). ` + (photo.warning || "");
    $("face-box").hidden = false;
  } catch (error) {
    show($("photo-error"), error.message);
  }
  updateSubmit();
}

function uploadFile(file) {
  if (!file) return;
  const form = new FormData();
  form.append("image", file);
  show($("photo-error"), "");
  $("face-note").textContent = "Looking for a face…";
  sendPhoto(form);
}

$("photo-file").addEventListener("change", (event) => uploadFile(event.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((name) => drop.addEventListener(name, (event) => {
  event.preventDefault();
  drop.classList.add("over");
}));
["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  uploadFile(event.dataTransfer.files[0]);
});

async function loadSamples() {
  const list = await api("/api/samples");
  for (const sample of list) {
    const button = document.createElement("button");
    button.type = "button";
    button.title = sample.name;
    button.dataset.sample = sample.name;
    const image = document.createElement("img");
    image.src = sample.url;
    image.alt = sample.name;
    image.loading = "lazy";
    button.appendChild(image);
    button.addEventListener("click", () => {
      const form = new FormData();
      form.append("sample", sample.name);
      sendPhoto(form);
    });
    $("samples").appendChild(button);
  }
}

// ---------------------------------------------------------------- the options

for (const button of document.querySelectorAll("#emotions button")) {
  button.addEventListener("click", () => {
    emotion = button.dataset.emotion;
    for (const other of document.querySelectorAll("#emotions button")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
  });
}
$("all-emotions").addEventListener("change", (event) => {
  $("emotions").classList.toggle("disabled", event.target.checked);
});
$("speed").addEventListener("input", (event) => { $("speed-value").textContent = Number(event.target.value).toFixed(2); });
$("head-motion").addEventListener("input", (event) => {
  $("head-motion-value").textContent = Number(event.target.value).toFixed(2);
});

// The intensity is a number 0..1.5; LO, MD and HI are named points on it (the server says a named
// point by its name: 0.5 is LO).
const INTENSITY_POINTS = {LO: 0.5, MD: 0.75, HI: 1.0};

function intensityName(value) {
  const named = Object.keys(INTENSITY_POINTS).find((name) => INTENSITY_POINTS[name] === Number(value));
  return named || null;
}

function drawIntensity() {
  const value = $("intensity").value;
  const named = intensityName(value);
  $("intensity-value").textContent = `${Number(value).toFixed(2)}${named ? ` (${named})` : ""}`;
  for (const point of document.querySelectorAll("#intensity-points button")) {
    point.classList.toggle("on", Number(point.dataset.value) === Number(value));
  }
}

$("intensity").addEventListener("input", drawIntensity);
for (const point of document.querySelectorAll("#intensity-points button")) {
  point.addEventListener("click", () => { $("intensity").value = point.dataset.value; drawIntensity(); });
}
$("text").addEventListener("input", () => { $("text-count").textContent = $("text").value.length; updateSubmit(); });

function useRecording(file) {
  recording = file || null;
  if (!recording) $("audio-file").value = "";
  $("text").disabled = $("voice").disabled = $("speed").disabled = Boolean(recording);
  $("audio-clear").hidden = !recording;
  show($("audio-note"), recording ? `The recording “${recording.name}” (${(recording.size / 1024).toFixed(0)} kB) ` +
    "is the speech: the text, voice and speed are not used; the face shows the emotion chosen below." : "");
  updateSubmit();
}

$("audio-file").addEventListener("change", (event) => useRecording(event.target.files[0]));
$("audio-clear").addEventListener("click", () => useRecording(null));

function updateSubmit() {
  $("submit").disabled = !photoId || !(recording || $("text").value.trim());
}

async function loadVoices() {
  const voices = await api("/api/voices");
  for (const voice of voices) {
    const option = document.createElement("option");
    option.value = option.textContent = voice;
    $("voice").appendChild(option);
  }
  $("voice-box").hidden = voices.length < 2;  // one voice: nothing to choose
}

// ---------------------------------------------------------------- a job

$("video-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  show($("submit-error"), "");
  const form = new FormData();
  form.append("photo", photoId);
  if (recording) form.append("audio", recording, recording.name);
  else form.append("text", $("text").value);
  form.append("emotion", emotion);
  form.append("all_emotions", $("all-emotions").checked);
  form.append("intensity", intensityName($("intensity").value) || $("intensity").value);
  form.append("head_motion", $("head-motion").value);
  form.append("blinks", $("blinks").checked);
  form.append("voice", $("voice").value);
  form.append("speed", $("speed").value);
  form.append("paste_back", $("paste-back").checked);
  window.liveStats = {submitted: performance.now(), posted: null, firstBytes: null, buffered: null, started: null,
    playing: null, stalls: 0};
  try {
    const job = await api("/api/videos", {method: "POST", body: form});
    window.liveStats.posted = performance.now();
    follow(job);
  } catch (error) {
    show($("submit-error"), error.message);
  }
});

function drawSteps(job) {
  const current = job.status === "queued" ? "queued" : job.step;
  const reached = job.status === "done" ? STEPS.length : STEPS.indexOf(current);
  STEPS.forEach((step, index) => {
    const item = document.querySelector(`#steps li[data-step="${step}"]`);
    item.className = index < reached ? "done" : index === reached ?
      (job.status === "failed" ? "failed" : "active") : "";
  });
}

function describe(job) {
  const inputs = job.inputs;
  const feeling = inputs.all_emotions ? "all emotions" : EMOTION_NAMES[inputs.emotions[0]];
  const model = job.model.version ? `${job.model.name} v${job.model.version}` : job.model.name;
  const speech = inputs.audio ? "a recording (no text)" :
    `“${inputs.text}” · voice ${inputs.voice} · speed ${inputs.speed}`;
  const life = inputs.head_motion === undefined ? "" :
    ` · head motion ${inputs.head_motion}${inputs.blinks ? "" : " · no blinks"}`;
  return `${speech} · ${feeling} (${inputs.intensity})${life}` +
    `${inputs.paste_back ? " · pasted back" : ""} · model ${model}`;
}

function drawCheck(job) {
  // The segments (one per emotion tag; one for plain text or a recording) with the emotion each asked
  // for and, when checked, the one the face shows and the evaluator's confidence; mismatches stand out.
  const segments = job.status === "done" && job.segments ? job.segments : [];
  $("check").hidden = !segments.length;
  const tableElement = $("segments");
  tableElement.replaceChildren();
  const check = job.self_check || {};
  const checked = segments.some((segment) => "match" in segment);
  const head = tableElement.insertRow();
  for (const title of ["time (s)", "words", "asked", "shown", "confidence", ""]) {
    const cell = document.createElement("th");
    cell.textContent = title;
    head.appendChild(cell);
  }
  const fps = job.fps || 25;
  for (const segment of segments) {
    const row = tableElement.insertRow();
    row.className = !checked ? "" : segment.match ? "match" : "mismatch";
    row.insertCell().textContent = `${(segment.first_frame / fps).toFixed(1)}–${(segment.end_frame / fps).toFixed(1)}`;
    row.insertCell().textContent = job.inputs.audio ? "(recording)" : (segment.text || "").trim();
    row.insertCell().textContent = `${segment.emotion}${segment.intensity && segment.intensity !== "HI" ?
      ":" + segment.intensity : ""}`;
    row.insertCell().textContent = checked ? segment.shown : "–";
    row.insertCell().textContent = checked ? Number(segment.confidence).toFixed(2) : "–";
    row.insertCell().textContent = !checked ? "" : segment.match ? "ok" : "mismatch";
  }
  $("check-note").textContent = check.skipped ? `self-check skipped: ${check.skipped}` :
    check.evaluator ? `checked with ${check.evaluator}: ${check.mismatches} of ${check.segments} ` +
      `segment${check.segments === 1 ? "" : "s"} mismatched` : "";
  const warnings = $("warnings");
  warnings.replaceChildren();
  for (const line of job.warnings || []) {
    const item = document.createElement("li");
    item.textContent = line;
    warnings.appendChild(item);
  }
}

// ---------------------------------------------------------------- live playback

// The codec of the H.264 stream in an MP4's first bytes (its avcC box: profile, constraints, level), as
// Media Source Extensions need it named; null until those bytes have come.
function avcCodec(bytes) {
  for (let i = 0; i + 8 <= bytes.length; i++) {
    if (bytes[i] === 0x61 && bytes[i + 1] === 0x76 && bytes[i + 2] === 0x63 && bytes[i + 3] === 0x43) {
      const hex = (n) => n.toString(16).padStart(2, "0");
      return `avc1.${hex(bytes[i + 5])}${hex(bytes[i + 6])}${hex(bytes[i + 7])}`;
    }
  }
  return null;
}

function joined(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function stopLive() {
  if (live) live.controller.abort();
  live = null;
}

// Whether the live video can start now without running out: at once where the video is made faster than it
// plays; else once what is there lasts until the rest is made, at the rate the job's progress has moved
// since its generation began (``polls``: the share of the video made, as follow() saw it; two are needed).
// ``mine.pace``: video seconds this server made per second in its recent jobs like this one (``madePace``); at
// least ``PLAY_AT_ONCE_PACE``, the first fragment plays as soon as it is there, without waiting for two polls.
function readyToPlay(mine) {
  if (!mine.buffer || !mine.buffer.buffered.length) return false;
  const end = mine.buffer.buffered.end(mine.buffer.buffered.length - 1);
  const polls = mine.polls;
  if (mine.complete) return true;
  if (mine.pace !== null && mine.pace >= PLAY_AT_ONCE_PACE) return true;
  if (polls.length < 2) return false;
  const first = polls[0];
  const last = polls[polls.length - 1];
  const total = end / Math.max(last.share, 1e-3);  // (the share lags the stream a little: a longer guess)
  const rate = (last.share - first.share) * total / Math.max(last.time - first.time, 1e-3);  // video s per s
  if (rate >= 1) return true;
  const need = 1.3 * (total - end) * (1 - rate) / Math.max(rate, 1e-3);
  return end - $("player").currentTime >= need;
}

function startWhenReady(mine) {
  if (window.liveStats.buffered === null && mine.buffer && mine.buffer.buffered.length) {
    window.liveStats.buffered = performance.now();
  }
  if (live === mine && !mine.started && readyToPlay(mine)) {
    mine.started = true;
    window.liveStats.started = performance.now();
    $("player").play().catch(() => {});
  }
}

// Play a job's video as it is made: its fragments appended to a MediaSource as they arrive. A job that
// ended meanwhile (the server sends the finished mp4) is left to play() when the page learns it is done.
async function playLive(job) {
  stopLive();
  if (!window.MediaSource || !job.live_url) return;
  const mine = {id: job.id, controller: new AbortController(), buffer: null, polls: [], started: false,
    complete: false, pace: madePace[Boolean(job.inputs && job.inputs.paste_back)] ?? null};
  live = mine;
  try {
    const response = await fetch(job.live_url, withToken({signal: mine.controller.signal}));
    if (!response.ok || response.headers.get("X-Stream") !== "live") throw new Error("not live");
    const source = new MediaSource();
    const player = $("player");
    player.src = URL.createObjectURL(source);
    player.hidden = false;
    await new Promise((resolve) => source.addEventListener("sourceopen", resolve, {once: true}));
    let pending = new Uint8Array(0);
    const append = (bytes) => new Promise((resolve, reject) => {
      mine.buffer.addEventListener("updateend", resolve, {once: true});
      mine.buffer.addEventListener("error", reject, {once: true});
      mine.buffer.appendBuffer(bytes);
    });
    const reader = response.body.getReader();
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      if (window.liveStats.firstBytes === null) window.liveStats.firstBytes = performance.now();
      if (mine.buffer) {
        await append(value);
      } else {
        pending = joined(pending, value);
        const codec = avcCodec(pending);
        if (!codec) continue;  // the start of the file (its codecs) has not all come yet
        mine.buffer = source.addSourceBuffer(`video/mp4; codecs="${codec}, mp4a.40.2"`);
        await append(pending);
      }
      startWhenReady(mine);
    }
    if (source.readyState === "open") source.endOfStream();
    mine.complete = true;
    startWhenReady(mine);
  } catch (error) {
    if (live === mine) live = null;  // aborted, or not playable live: the finished file plays when done
  }
}

$("player").addEventListener("playing", () => {
  if (window.liveStats.playing === null && window.liveStats.submitted !== null) {
    window.liveStats.playing = performance.now();
  }
});
$("player").addEventListener("waiting", () => {
  if (window.liveStats.playing !== null) window.liveStats.stalls += 1;
});

async function play(job) {
  const video = await mediaUrl(job.video_url);
  $("player").hidden = false;
  const playingLive = live && live.id === job.id;  // the live stream plays on to its end: the same video
  if (!playingLive && !$("player").src.endsWith(video)) $("player").src = video;
  $("download").href = auth ? video : `${job.video_url}?download=true`;
  if (auth) $("download").download = `synthtext-${job.id}.mp4`;
  $("download").hidden = false;
  $("result-inputs").textContent = describe(job);
  drawCheck(job);
}

function follow(job) {
  if (watching) clearTimeout(watching);
  stopLive();
  $("player").hidden = true;
  $("player").removeAttribute("src");
  if (job.status === "queued" || job.status === "running") playLive(job);
  $("download").hidden = true;
  $("delete").dataset.url = job.url;
  $("delete").hidden = false;
  $("result-inputs").textContent = describe(job);
  drawCheck(job);
  const tick = async () => {
    try {
      job = await api(job.url);
    } catch (error) {
      $("status").textContent = error.message;
      return;
    }
    drawSteps(job);
    if (live && live.id === job.id && job.step === "generate") {
      live.polls.push({time: performance.now() / 1000, share: 4 * job.progress - 2});
      startWhenReady(live);
    }
    if (job.status === "done") {
      const took = job.finished && job.created ? ` in ${(job.finished - job.created).toFixed(1)} s` : "";
      $("status").textContent = `Done${took}: ${job.seconds} s of speech.`;
      play(job);
      loadGallery();
    } else if (job.status === "failed") {
      $("status").textContent = `Failed: ${job.error}`;
      loadGallery();
    } else {
      const names = {tts: "speaking", face: "preparing the face", generate: "generating the frames",
        encode: "encoding the video"};
      const done = Math.round(100 * (job.progress || 0));  // during generation it moves with the frames made
      $("status").textContent = job.status === "queued" ? "Waiting in the queue…"
        : `${names[job.step] || "starting"}… ${done}%`;
      watching = setTimeout(tick, 250);
    }
  };
  drawSteps(job);
  tick();
}

// ---------------------------------------------------------------- the gallery and the model

// How fast the server made its recent videos (seconds of video per second from start to end, the speech, the
// self-check and every block included), pasted back or not: the median of the last few made (not reused) ones.

function learnPace(jobs) {
  for (const pasted of [false, true]) {
    const paces = jobs.filter((job) => job.status === "done" && Boolean(job.inputs.paste_back) === pasted &&
        job.times && job.times.generate && job.started && job.finished > job.started && job.seconds)
      .sort((a, b) => b.finished - a.finished).slice(0, 5)
      .map((job) => job.seconds / (job.finished - job.started)).sort((a, b) => a - b);
    madePace[pasted] = paces.length ? paces[Math.floor((paces.length - 1) / 2)] : null;
  }
}

async function loadGallery() {
  const jobs = await api("/api/videos");
  learnPace(jobs);
  const gallery = $("gallery");
  gallery.replaceChildren();
  if (!jobs.length) {
    gallery.textContent = "No videos yet.";
    return;
  }
  for (const job of jobs) {
    const card = document.createElement("button");
    card.type = "button";
    card.className = "card";
    card.dataset.job = job.id;
    card.dataset.status = job.status;
    const face = document.createElement("img");
    face.alt = "";
    mediaUrl(job.face_url).then((url) => { face.src = url; }, () => { face.hidden = true; });
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = job.inputs.audio ? "(a recording)" : job.inputs.text;
    const about = document.createElement("span");
    const feeling = job.inputs.all_emotions ? "all emotions" : EMOTION_NAMES[job.inputs.emotions[0]];
    const parts = job.segments && job.segments.length > 1 ? `${job.segments.length} parts` : feeling;
    about.textContent = `${job.inputs.audio ? "recording · " : ""}${parts} · ` +
      `${job.model.version ? "v" + job.model.version : "folder"} · `;
    const status = document.createElement("span");
    status.textContent = job.status;
    if (job.status === "failed") {
      status.className = "failed";
      status.title = job.error;
      status.textContent = `failed: ${job.error}`;
    }
    card.append(face, text, about, status);
    if (job.warnings && job.warnings.length) {
      const warn = document.createElement("span");
      warn.className = "warn";
      warn.textContent = ` · ${job.warnings.length} mismatch${job.warnings.length === 1 ? "" : "es"}`;
      warn.title = job.warnings.join("\n");
      card.appendChild(warn);
    }
    card.addEventListener("click", () => follow(job));
    gallery.appendChild(card);
  }
}

function addInfo(list, name, value) {
  if (value === null || value === undefined) return;
  const term = document.createElement("dt");
  term.textContent = name;
  const detail = document.createElement("dd");
  detail.textContent = value;
  list.append(term, detail);
}

function table(rows, columns) {
  const element = document.createElement("table");
  const head = element.insertRow();
  for (const title of ["", ...columns]) {
    const cell = document.createElement("th");
    cell.textContent = title;
    head.appendChild(cell);
  }
  const metrics = [...new Set(columns.flatMap((column) => Object.keys(rows[column])))].sort();
  for (const metric of metrics) {
    const row = element.insertRow();
    row.insertCell().textContent = metric;
    for (const column of columns) {
      const value = rows[column][metric];
      row.insertCell().textContent = value === undefined ? "" : Number(value).toPrecision(3);
    }
  }
  return element;
}

async function loadModel() {
  try {
    const model = await api("/api/model");
    const list = $("model-info");
    list.replaceChildren();
    addInfo(list, "name", model.name);
    addInfo(list, "version", model.version);
    addInfo(list, "alias", model.alias ? `@${model.alias}` : null);
    addInfo(list, "reference", model.ref);
    addInfo(list, "weights md5", model.md5);
    addInfo(list, "trained by", model.stage);
    addInfo(list, "MLflow run", model.run_id);
    const figures = $("model-eval");
    figures.replaceChildren();
    if (model.evaluation && Object.keys(model.evaluation).length) {
      figures.appendChild(table(model.evaluation, Object.keys(model.evaluation)));
      const note = document.createElement("p");
      note.className = "hint";
      const promotion = model.promotion || {};
      note.textContent = "From metrics/evaluate.json, the last evaluation" +
        (promotion.candidate_version ? ` (of version ${promotion.candidate_version}: ` +
          `${promotion.promoted ? "promoted" : "not promoted"}; champion before: ` +
          `${promotion.champion_version_before || "none"})` : "") +
        ". Columns: the champion before it and the evaluated model (generated) on the validation people, the evaluated model on the held-out photos, and the baselines real (the recorded clips) and static (a still frame).";
      figures.appendChild(note);
    }
    if (model.run_metrics && Object.keys(model.run_metrics).length) {
      figures.appendChild(table({"this version's run": model.run_metrics}, ["this version's run"]));
    }
    if (!figures.children.length) figures.textContent = "No evaluation figures for this model.";
  } catch (error) {
    $("model-eval").textContent = error.message;
  }
  try {
    const record = await api("/api/model/lineage");
    if (record.error) {
      $("model-lineage").textContent = record.error;
      return;
    }
    const lines = [`${record.stage} run ${record.model.run_id}, git ${record.commit.slice(0, 12)}` +
      (record.dirty ? " (uncommitted changes)" : " (clean)"),
    `params ${record.stage}: ${JSON.stringify(record.params)}`];
    for (const [path, md5] of Object.entries(record.inputs)) lines.push(`input ${path}: ${md5}`);
    lines.push(`raw data ${record.raw_source}: ${record.raw_md5}; ${record.train_clips} training clips`);
    for (const [stage, entry] of Object.entries(record.upstream)) {
      const outs = Object.entries(entry.outs).map(([p, m]) => `${p} ${m}`).join(", ");
      lines.push(`<- ${stage}${entry.mlflow_run_id ? ", MLflow run " + entry.mlflow_run_id : ""}: ${outs}`);
    }
    $("model-lineage").textContent = lines.join("\n");
  } catch (error) {
    $("model-lineage").textContent = error.message;
  }
}

$("delete").addEventListener("click", async () => {
  try {
    await api($("delete").dataset.url, {method: "DELETE"});
  } catch (error) {
    $("status").textContent = error.message;
    return;
  }
  if (watching) clearTimeout(watching);
  stopLive();
  for (const id of ["player", "download", "delete", "check"]) $(id).hidden = true;
  $("player").removeAttribute("src");
  $("status").textContent = "Deleted.";
  $("result-inputs").textContent = "";
  loadGallery();
});

$("text-count").textContent = $("text").value.length;
drawIntensity();
loadSamples();
loadVoices();
start();
