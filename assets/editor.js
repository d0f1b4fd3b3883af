// The editor's canvas in the browser: divider drag, pinch/wheel zoom, brush and AI Cut marks.
// Everything here is drawing and pointer bookkeeping; the server applies every edit.
// Coordinates sent to the server are fractions (0-1) of the photo shown, so they do not
// depend on the screen's size or the zoom.
(function () {
  if (window.cutoutEditor) return;
  const MIN_STEP = 3; // screen pixels between kept stroke points: a drag stays a few hundred
  const COLORS = { erase: "rgba(239,68,68,0.55)", restore: "rgba(34,197,94,0.55)",
                   keep: "rgba(34,197,94,0.8)", remove: "rgba(239,68,68,0.8)", box: "#2563eb" };
  const state = { scale: 1, x: 0, y: 0, pointers: new Map(), pinch: null, stroke: null,
                  marks: [] };

  const stage = () => document.getElementById("editor-stage");
  const surface = () => document.getElementById("editor-surface");
  const photo = () => document.getElementById("editor-after");
  const overlay = () => document.getElementById("editor-overlay");
  const mode = () => (stage() ? stage().dataset.mode : "compare");

  function applyTransform() {
    const el = surface();
    if (el) el.style.transform = `translate(${state.x}px, ${state.y}px) scale(${state.scale})`;
  }

  function fit() {
    state.scale = 1; state.x = 0; state.y = 0;
    applyTransform();
  }

  function zoomAt(factor, clientX, clientY) {
    const box = stage().getBoundingClientRect();
    const next = Math.min(8, Math.max(1, state.scale * factor));
    const px = clientX - box.left, py = clientY - box.top;
    // Keep the point under the fingers (or the cursor) where it is.
    state.x = px - ((px - state.x) * next) / state.scale;
    state.y = py - ((py - state.y) * next) / state.scale;
    state.scale = next;
    if (next === 1) { state.x = 0; state.y = 0; }
    applyTransform();
  }

  function setSplit(percent) {
    const value = Math.min(100, Math.max(0, percent));
    const el = surface();
    if (el) el.style.setProperty("--split", value + "%");
    const range = document.getElementById("editor-divider");
    if (range && Number(range.value) !== Math.round(value)) range.value = Math.round(value);
  }

  function fraction(event) {
    const rect = photo().getBoundingClientRect();
    return [(event.clientX - rect.left) / rect.width, (event.clientY - rect.top) / rect.height];
  }

  function sizeOverlay() {
    const canvas = overlay(), img = photo();
    if (!canvas || !img) return null;
    const w = img.clientWidth, h = img.clientHeight;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    return canvas;
  }

  function drawLine(ctx, mark, w) {
    ctx.strokeStyle = ctx.fillStyle = COLORS[mark.kind];
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = 2 * mark.radius * w;
    ctx.beginPath();
    mark.points.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * ctx.canvas.height)
                                          : ctx.moveTo(x * w, y * ctx.canvas.height)));
    if (mark.points.length === 1) ctx.lineTo(mark.points[0][0] * w + 0.1, mark.points[0][1] * ctx.canvas.height);
    ctx.stroke();
  }

  function redraw() {
    const canvas = sizeOverlay();
    if (!canvas) return;
    const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const all = state.stroke ? state.marks.concat([state.stroke]) : state.marks;
    for (const mark of all) {
      if (mark.kind === "box") {
        const [x0, y0, x1, y1] = mark.box;
        ctx.strokeStyle = COLORS.box; ctx.lineWidth = 2; ctx.setLineDash([6, 4]);
        ctx.strokeRect(Math.min(x0, x1) * w, Math.min(y0, y1) * h,
                       Math.abs(x1 - x0) * w, Math.abs(y1 - y0) * h);
        ctx.setLineDash([]);
      } else {
        drawLine(ctx, mark, w);
      }
    }
  }

  // Hand marks to the server through a hidden input's change event: no eval, which the
  // site's Content-Security-Policy forbids.
  function commit(mark) {
    if (mark.kind !== "erase" && mark.kind !== "restore") state.marks.push(mark);
    const input = document.getElementById("editor-marks");
    if (!input) return;
    const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
    setValue.call(input, JSON.stringify([mark]));
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function onDown(event) {
    const el = event.target.closest && event.target.closest("#editor-surface");
    if (!el) return;
    event.preventDefault();
    try { el.setPointerCapture(event.pointerId); } catch (_) { /* not an active pointer */ }
    state.pointers.set(event.pointerId, [event.clientX, event.clientY]);
    if (state.pointers.size === 2) {
      // A second finger: this is a pinch, not a stroke.
      state.stroke = null; redraw();
      const [a, b] = [...state.pointers.values()];
      state.pinch = { distance: Math.hypot(a[0] - b[0], a[1] - b[1]) };
      return;
    }
    if (state.pointers.size > 2) return;
    const current = mode();
    if (current === "compare") {
      const rect = photo().getBoundingClientRect();
      setSplit(((event.clientX - rect.left) / rect.width) * 100);
      return;
    }
    const [x, y] = fraction(event);
    if (current === "box") {
      state.stroke = { kind: "box", box: [x, y, x, y] };
    } else {
      const brush = Number(stage().dataset.brush || 20);
      const rect = photo().getBoundingClientRect();
      state.stroke = { kind: current, radius: brush / rect.width, points: [[x, y]], last: [event.clientX, event.clientY] };
    }
    redraw();
  }

  function onMove(event) {
    if (!state.pointers.has(event.pointerId)) return;
    state.pointers.set(event.pointerId, [event.clientX, event.clientY]);
    if (state.pinch && state.pointers.size === 2) {
      const [a, b] = [...state.pointers.values()];
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
      if (state.pinch.distance > 0) zoomAt(distance / state.pinch.distance, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      state.pinch.distance = distance;
      return;
    }
    if (mode() === "compare") {
      const rect = photo().getBoundingClientRect();
      setSplit(((event.clientX - rect.left) / rect.width) * 100);
      return;
    }
    const stroke = state.stroke;
    if (!stroke) return;
    const [x, y] = fraction(event);
    if (stroke.kind === "box") {
      stroke.box[2] = x; stroke.box[3] = y;
    } else {
      const [lx, ly] = stroke.last;
      if (Math.hypot(event.clientX - lx, event.clientY - ly) < MIN_STEP) return;
      stroke.last = [event.clientX, event.clientY];
      stroke.points.push([x, y]);
    }
    redraw();
  }

  function onUp(event) {
    if (!state.pointers.has(event.pointerId)) return;
    state.pointers.delete(event.pointerId);
    if (state.pinch) { if (state.pointers.size === 0) state.pinch = null; return; }
    const stroke = state.stroke;
    state.stroke = null;
    if (!stroke) return;
    const clamp = (v) => Math.min(1, Math.max(0, v));
    if (stroke.kind === "box") {
      const [x0, y0, x1, y1] = stroke.box.map(clamp);
      if (Math.abs(x1 - x0) < 0.01 || Math.abs(y1 - y0) < 0.01) { redraw(); return; }
      state.marks = state.marks.filter((m) => m.kind !== "box"); // one box at a time
      commit({ kind: "box", box: [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)] });
    } else {
      commit({ kind: stroke.kind, radius: stroke.radius,
               points: stroke.points.map(([x, y]) => [clamp(x), clamp(y)]) });
    }
    redraw();
  }

  function onWheel(event) {
    if (!event.target.closest || !event.target.closest("#editor-surface")) return;
    event.preventDefault();
    zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX, event.clientY);
  }

  document.addEventListener("pointerdown", onDown);
  document.addEventListener("pointermove", onMove);
  document.addEventListener("pointerup", onUp);
  document.addEventListener("pointercancel", onUp);
  document.addEventListener("wheel", onWheel, { passive: false });
  document.addEventListener("click", (event) => {
    if (event.target.closest && event.target.closest("#editor-fit")) fit();
  });
  // The server clears the AI Cut marks (applied, or "Clear marks"): the drawing follows.
  new MutationObserver(() => {
    const el = stage();
    if (el && el.dataset.marks === "0" && state.marks.length) { state.marks = []; redraw(); }
  }).observe(document.documentElement, { subtree: true, attributes: true, attributeFilter: ["data-marks"] });
  document.addEventListener("input", (event) => {
    if (event.target && event.target.id === "editor-divider") setSplit(Number(event.target.value));
  });
  window.addEventListener("resize", redraw);

  window.cutoutEditor = { fit, redraw };
})();
