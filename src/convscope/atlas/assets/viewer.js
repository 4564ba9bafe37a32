/* convscope atlas viewer: vanilla JS, no build step, works from file://.
 *
 * Data arrives as scripts that call window.convscopeRegister(kind, index, payload):
 * viewer/data/analyses.js and viewer/data/manifest.js at page load, a layer's records when it is
 * shown (layers/<layer>/hits.js, the atlas's one copy, compact: expandLayer; an atlas older than
 * format version 4 has viewer/data/layer-<i>.js instead). Every string from the data goes into the page as text (textContent /
 * text nodes), never as HTML. Routes: #  (layers), #<layer>, #<layer>/<unit>, #/<folder>
 * for an analysis inside the atlas (drawn by viewer/analyses.js with the helpers given it), and
 * #/explain/<name> for an explained image (drawn by viewer/explain.js) or a class-relevance folder
 * (#/explain/<name>[/<class>], drawn by viewer/classes.js); ATLAS/circuits/ (convscope circuits) at
 * #/circuits, an ablated layer's classes at #/circuits/ablation/<layer>[/<class>] and a unit's circuit at
 * #/circuit/<layer>/<unit> (drawn by viewer/circuits.js).
 */
(function () {
  "use strict";

  const state = {
    manifest: null,
    layerIndex: new Map(),   // layer name -> index in manifest.layers
    layers: new Map(),       // index -> the layer's records, expanded (expandLayer)
    pending: new Map(),      // index -> {promise, resolve}
    sort: "index",
    ascending: false,        // statistic sorts: lowest first instead of highest first
    filter: "all",           // layer view filter (atlases with unit statistics)
    route: null,             // {view, layer, unit}
    order: [],               // unit numbers of the shown layer, in the chosen sort
    cursor: -1,              // position in order of the highlighted card (layer view)
    observer: null,
    token: 0,
    analyses: [],            // [{kind, folder, record}] of the analysis folders inside the atlas
    views: null,             // what window.convscopeAnalyses returned (viewer/analyses.js)
    explanations: [],        // [{kind, folder, record}] of ATLAS/explain/<name>/ (kind "explanation" or "classes")
    explain: null,           // what window.convscopeExplanations returned (viewer/explain.js)
    classes: null,           // what window.convscopeClasses returned (viewer/classes.js)
    circuitFolders: [],      // [{kind: "circuits", folder, record}] of ATLAS/circuits/
    circuits: null,          // what window.convscopeCircuits returned (viewer/circuits.js)
  };

  window.convscopeRegister = function (kind, index, payload) {
    if (kind === "manifest") {
      state.manifest = payload;
      start();
    } else if (kind === "layer") {
      const layer = expandLayer(payload);
      const waiting = state.pending.get(index);
      if (layer === null) {  // records in a layout this viewer does not know: say so, do not draw
        state.pending.delete(index);
        if (waiting) waiting.reject(new Error(`the records of layer ${index} are not in a layout this viewer reads; rebuild the atlas with convscope atlas`));
        return;
      }
      state.layers.set(index, layer);
      if (waiting) waiting.resolve(layer);
    } else if ((kind === "evolution" || kind === "invariance") && isObject(payload) && isObject(payload.record) && typeof payload.folder === "string") {
      state.analyses.push({ kind, folder: payload.folder, record: payload.record });
    } else if ((kind === "explanation" || kind === "classes") && isObject(payload) && isObject(payload.record) && typeof payload.folder === "string") {
      state.explanations.push({ kind, folder: payload.folder, record: payload.record });
    } else if (kind === "explanation-maps" && state.explain) {
      state.explain.arrive(payload);
    } else if ((kind === "classes-class" || kind === "classes-units") && state.classes) {
      state.classes.arrive(payload);
    } else if (kind === "circuits" && isObject(payload) && isObject(payload.record) && typeof payload.folder === "string") {
      state.circuitFolders.push({ kind, folder: payload.folder, record: payload.record });
    } else if ((kind === "circuits-inputs" || kind === "circuits-ablation") && state.circuits) {
      state.circuits.arrive(payload);
    }
  };

  /* A layer's records as stored (format version 4: each hit a row of hit_fields, its image a slot
   * of the layer's images table) in the shape the page reads: each hit an object with rank,
   * activation, image, label, image_file, row, col and box. Older records pass as they are. */
  const HIT_FIELDS = "activation,image,row,col,top,left,bottom,right";
  function expandLayer(payload) {
    if (!isObject(payload) || !Array.isArray(payload.hit_fields)) return payload;
    if (payload.hit_fields.join(",") !== HIT_FIELDS || !Array.isArray(payload.images) || !Array.isArray(payload.units)) return null;
    const images = payload.images;
    const expand = (rows) => (Array.isArray(rows) ? rows : []).map((row, rank) => {
      const image = images[row[1]] || [null, null, null];
      return { rank, activation: row[0], image: image[1], label: image[2], image_file: image[0],
               row: row[2], col: row[3], box: row.slice(4, 8) };
    });
    const units = payload.units.map((unit) => {
      const out = Object.assign({}, unit, { hits: expand(unit.hits) });
      if ("bottom" in unit) out.bottom = expand(unit.bottom);
      return out;
    });
    const layer = Object.assign({}, payload, { units });
    delete layer.hit_fields;
    delete layer.images;
    return layer;
  }

  /* ---------- small helpers ---------- */

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === null || value === undefined) continue;
        if (key === "text") node.textContent = String(value);
        else if (key === "class") node.className = value;
        else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
        else node[key] = value;
      }
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);
  const pad4 = (unit) => String(unit).padStart(4, "0");
  const fmt = (x) => (typeof x === "number" && isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(3)) : String(x));

  /* A '/'-separated path inside the atlas as a relative URL, or null if it could leave the atlas. */
  function atlasUrl(path) {
    if (typeof path !== "string") return null;
    const parts = path.split("/");
    if (parts.some((p) => p === "" || p === "." || p === "..")) return null;
    return parts.map(encodeURIComponent).join("/");
  }

  /* A '/'-separated path inside an atlas folder as a relative URL (null if it could leave it). */
  function folderUrl(folder, path) {
    const base = atlasUrl(folder), inside = atlasUrl(path);
    return base && inside ? `${base}/${inside}` : null;
  }

  /* Data scripts inside analysis folders, each loaded once: a script calls convscopeRegister, which
     hands its payload to arrive(); its onload runs right after and settles load()'s promise with
     it, if accept(payload) holds. hint: what to do when a script cannot be loaded. */
  function dataScripts(accept, hint) {
    const scripts = new Map();   // url -> Promise<payload>
    let arrived = null;          // the payload of the data script that just ran
    function load(folder, path) {
      const url = folderUrl(folder, path);
      if (!url) return Promise.reject(new Error(`bad data script path ${String(path)}`));
      if (scripts.has(url)) return scripts.get(url);
      const promise = new Promise((resolve, reject) => {
        const script = el("script", { src: url });
        script.onload = () => {
          const payload = arrived;
          arrived = null;
          if (accept(payload)) resolve(payload);
          else reject(new Error(`${url} holds no data`));
        };
        script.onerror = () => reject(new Error(`cannot load ${url}${hint ? `: ${hint}` : ""}`));
        document.head.append(script);
      });
      promise.catch(() => scripts.delete(url));
      scripts.set(url, promise);
      return promise;
    }
    return { load, arrive(payload) { arrived = payload; } };
  }

  function gridUrl(layerName, unit, projection, suffix) {
    const kind = suffix || (projection ? "-projection" : "");
    return `layers/${encodeURIComponent(layerName)}/units/${pad4(unit)}${kind}.png`;
  }

  function routeHash(layerName, unit) {
    return "#" + encodeURIComponent(layerName) + (unit === undefined || unit === null ? "" : "/" + unit);
  }

  function hasLabels(layerData) {
    const labels = state.manifest.dataset && state.manifest.dataset.labels;
    if (Array.isArray(labels) && labels.length) return true;
    return layerData.units.some((u) => u.hits.some((h) => h.label !== null && h.label !== undefined));
  }

  /* Label counts of a unit's hits, most common first: [[label, count], ...]. */
  function labelCounts(unit) {
    const counts = new Map();
    for (const hit of unit.hits) {
      if (hit.label === null || hit.label === undefined) continue;
      counts.set(hit.label, (counts.get(hit.label) || 0) + 1);
    }
    return [...counts.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
  }

  /* Fraction of a unit's hits that share its most common label; -1 without hits. */
  function selectivity(unit) {
    if (!unit.hits.length) return -1;
    const counts = labelCounts(unit);
    return counts.length ? counts[0][1] / unit.hits.length : 0;
  }

  function topActivation(unit) {
    return unit.hits.length ? unit.hits[0].activation : -Infinity;
  }

  function sortedUnits(layerData, sort) {
    const units = layerData.units.slice();
    const stat = hasStats(layerData) ? STAT_SORTS[sort] : null;
    if (stat && stat.key) {
      const value = (u) => statValue(u, stat);
      const sign = state.ascending ? 1 : -1;
      units.sort((a, b) => {
        const va = value(a), vb = value(b);
        if (va === null || vb === null) return (va === null) - (vb === null) || a.unit - b.unit;  // no value: last
        return sign * (va - vb) || a.unit - b.unit;
      });
    } else if (sort === "activation") units.sort((a, b) => topActivation(b) - topActivation(a) || a.unit - b.unit);
    else if (sort === "selectivity") units.sort((a, b) => selectivity(b) - selectivity(a) || a.unit - b.unit);
    else units.sort((a, b) => a.unit - b.unit);
    return units;
  }

  /* ---------- unit statistics (atlas format version 3) ---------- */

  const isObject = (x) => x !== null && typeof x === "object" && !Array.isArray(x);
  const isNum = (x) => typeof x === "number" && isFinite(x);
  const CONFIDENT = new Set(["high", "medium"]);

  /* A share in [0, 1] as a percentage that never rounds a non-zero share to 0% or a partial one to 100%. */
  function pct(x) {
    if (!isNum(x)) return "—";
    const v = 100 * x;
    if (v === 0 || v === 100) return `${v}%`;
    if (v < 0.1) return "<0.1%";
    if (v > 99.9) return ">99.9%";
    return `${v < 5 || v > 95 ? v.toFixed(1) : v.toFixed(0)}%`;  // near the ends the decimal matters
  }
  const num2 = (x) => (isNum(x) ? x.toFixed(2) : "—");
  const level = (q) => `${+(100 * q).toPrecision(6)}%`;

  const hasStats = (layerData) => layerData.units.some((u) => isObject(u.stats));
  const hasClasses = (layerData) => layerData.units.some((u) => isObject(u.stats) && Array.isArray(u.stats.classes));

  /* The name of class `index` of the dataset's labels. */
  function className(index) {
    const labels = state.manifest.dataset && state.manifest.dataset.labels;
    return Array.isArray(labels) && Number.isInteger(index) && index >= 0 && index < labels.length ? String(labels[index]) : `class ${index}`;
  }

  /* Sorts of an atlas with statistics (highest first unless state.ascending); `short` and `show`
     label the value on a card. Sorts of older atlases: OLD_SORTS. */
  const STAT_SORTS = {
    index: { text: "unit index" },
    mean: { text: "mean", key: (s) => s.mean, short: "mean", show: fmt },
    max: { text: "max", key: (s) => s.max, short: "max", show: fmt },
    firing_rate: { text: "firing rate", key: (s) => s.firing_rate, short: "fires", show: pct },
    selectivity: { text: "selectivity", key: (s) => s.selectivity, short: "selectivity", show: num2, classes: true },
    purity: { text: "purity", key: (s) => s.purity, short: "purity", show: pct, classes: true },
    agreement: { text: "label agreement", key: (s) => (isObject(s.label) ? s.label.purity : null), short: "agreement", show: pct, classes: true },
  };
  const OLD_SORTS = {
    index: { text: "unit index" },
    activation: { text: "strongest activation" },
    selectivity: { text: "class selectivity", labels: true },
  };
  const FILTERS = {
    all: { text: "all units", test: () => true },
    dead: { text: "dead", test: (s) => s.dead === true },
    always_on: { text: "always on", test: (s) => s.always_on === true },
    selective: { text: "selective ≥ 0.5", test: (s) => isNum(s.selectivity) && s.selectivity >= 0.5, classes: true },
    labelled: { text: "labelled", title: "suggested label of high or medium confidence", test: (s) => isObject(s.label) && CONFIDENT.has(s.label.confidence), classes: true },
  };

  function statValue(unit, stat) {
    const value = isObject(unit.stats) ? stat.key(unit.stats) : null;
    return isNum(value) ? value : null;
  }

  /* [value, {text, ...}] of the sorts this layer offers. */
  function sortChoices(layerData) {
    if (hasStats(layerData)) {
      const classes = hasClasses(layerData);
      return Object.entries(STAT_SORTS).filter(([, s]) => classes || !s.classes);
    }
    const labels = hasLabels(layerData);
    return Object.entries(OLD_SORTS).filter(([, s]) => labels || !s.labels);
  }

  function filterChoices(layerData) {
    if (!hasStats(layerData)) return [];
    const classes = hasClasses(layerData);
    return Object.entries(FILTERS).filter(([, f]) => classes || !f.classes);
  }

  /* The layer's units as the chosen sort and filter show them (a choice the layer lacks: none). */
  function unitsInView(layerData) {
    const sort = sortChoices(layerData).some(([value]) => value === state.sort) ? state.sort : "index";
    const filter = filterChoices(layerData).some(([value]) => value === state.filter) ? state.filter : "all";
    let units = sortedUnits(layerData, sort);
    if (filter !== "all") units = units.filter((u) => isObject(u.stats) && FILTERS[filter].test(u.stats));
    return { units, sort, filter };
  }

  function sortText(layerData, sort) {
    const stat = hasStats(layerData) ? STAT_SORTS[sort] : OLD_SORTS[sort];
    const text = stat ? stat.text : sort;
    return stat && stat.key ? `${text}, ${state.ascending ? "lowest" : "highest"} first` : text;
  }

  function loadLayer(index) {
    if (state.layers.has(index)) return Promise.resolve(state.layers.get(index));
    if (state.pending.has(index)) return state.pending.get(index).promise;
    let resolve, reject;
    const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
    state.pending.set(index, { promise, resolve, reject });
    const stored = state.manifest.layers[index].hits;
    const src = typeof stored === "string" && stored.endsWith(".js") ? atlasUrl(stored) : `viewer/data/layer-${index}.js`;
    const script = el("script", { src: src || "" });
    script.onerror = () => {
      state.pending.delete(index);
      reject(new Error(`cannot load ${src || stored}`));
    };
    document.head.append(script);
    return promise;
  }

  /* ---------- patches, drawn from the stored images ---------- */

  // Each patch is cut out of its winning image (images/*.jpg, the model-input frame) by the
  // hit's box, as render/patch.py cuts the grids: past the border the pixels the network saw
  // (the mean colour for zero padding; reflected, repeated or wrapped pixels for the other
  // modes), covered by grey diagonal stripes where (row + col) % 4 == 0.
  const STRIPE = "rgb(96, 96, 96)";
  const PICTURE_SIDE = 512;   // a longer box is drawn scaled down (views/base.py samples it too)
  const pictures = new Map(); // image url -> Promise<HTMLImageElement>

  function loadImage(url) {
    if (!pictures.has(url)) {
      const img = new Image();
      img.src = url;
      pictures.set(url, img.decode().then(() => img, () => { pictures.delete(url); throw new Error(`cannot load ${url}`); }));
    }
    return pictures.get(url);
  }

  /* The image pixel that padded coordinate i shows along an axis `size` long (-1: zero padding). */
  function foldIndex(i, size, mode) {
    if (i >= 0 && i < size) return i;
    if (mode === "replicate") return Math.min(size - 1, Math.max(0, i));
    if (mode === "circular") return ((i % size) + size) % size;
    if (mode === "reflect") {
      if (size === 1) return 0;
      const period = 2 * (size - 1), m = ((i % period) + period) % period;
      return m < size ? m : period - m;
    }
    return -1;
  }

  /* One axis of a box [start, stop) as runs {at, len, src, dir, inside}: pixels at..at+len-1 of the
     patch show image pixels src, src+dir, ... (dir 1, -1 or 0; src -1: fill); runs never mix
     image content with padding. */
  function axisRuns(start, stop, size, mode) {
    const runs = [];
    for (let i = start; i < stop; i++) {
      const src = foldIndex(i, size, mode), inside = i >= 0 && i < size, last = runs[runs.length - 1];
      if (last && last.inside === inside && (src < 0) === (last.src < 0)) {
        const next = last.src + last.dir * last.len;
        if (src < 0) { last.len++; continue; }
        if (last.len === 1 && Math.abs(src - last.src) <= 1) { last.dir = src - last.src; last.len++; continue; }
        if (src === next || (last.dir === 0 && src === last.src)) { last.len++; continue; }
      }
      runs.push({ at: i - start, len: 1, src, dir: 1, inside });
    }
    return runs;
  }

  /* Draw the patch of `box` [top, left, bottom, right) of `img` into ctx with its top left at
     (x, y), `scale` canvas pixels per image pixel. */
  function drawPatch(ctx, img, box, mode, fill, x, y, scale) {
    const [top, left, bottom, right] = box;
    const rows = axisRuns(top, bottom, img.naturalHeight, mode), cols = axisRuns(left, right, img.naturalWidth, mode);
    ctx.imageSmoothingEnabled = scale < 1;
    const outside = [];
    for (const r of rows) {
      for (const c of cols) {
        const dx = x + c.at * scale, dy = y + r.at * scale, dw = c.len * scale, dh = r.len * scale;
        if (!r.inside || !c.inside) outside.push([dx, dy, dw, dh]);
        if (r.src < 0 || c.src < 0) {
          ctx.fillStyle = fill;
          ctx.fillRect(dx, dy, dw, dh);
          continue;
        }
        ctx.save();
        ctx.translate(dx + (c.dir < 0 ? dw : 0), dy + (r.dir < 0 ? dh : 0));
        ctx.scale(c.dir < 0 ? -1 : 1, r.dir < 0 ? -1 : 1);
        const sx = c.dir < 0 ? c.src - c.len + 1 : c.src, sy = r.dir < 0 ? r.src - r.len + 1 : r.src;
        ctx.drawImage(img, sx, sy, c.dir === 0 ? 1 : c.len, r.dir === 0 ? 1 : r.len, 0, 0, dw, dh);
        ctx.restore();
      }
    }
    if (outside.length) {
      ctx.save();
      ctx.fillStyle = stripes(ctx);
      ctx.translate(x, y);  // stripes counted from the patch's top left, in canvas pixels
      for (const [dx, dy, dw, dh] of outside) ctx.fillRect(Math.round(dx - x), Math.round(dy - y), Math.round(dw), Math.round(dh));
      ctx.restore();
    }
  }

  function stripes(ctx) {
    const tile = document.createElement("canvas");
    tile.width = tile.height = 4;
    const t = tile.getContext("2d");
    t.fillStyle = STRIPE;
    for (let i = 0; i < 4; i++) t.fillRect(i, (4 - i) % 4, 1, 1);  // (row + col) % 4 == 0
    return ctx.createPattern(tile, "repeat");
  }

  /* The colour of a zero model input (the mean): what zero padding shows the network. */
  function fillColour() {
    const mean = (state.manifest.preprocess && state.manifest.preprocess.mean) || [0, 0, 0];
    return `rgb(${mean.map((m) => Math.round(255 * m)).join(", ")})`;
  }

  /* How the network padded the image for `unit` of `layer` ("zeros" unless its field says). */
  function paddingOf(layer, unit) {
    const runs = Array.isArray(layer.receptive_fields) ? layer.receptive_fields : [];
    const run = runs.find((r) => Array.isArray(r.units) && unit >= r.units[0] && unit < r.units[1]);
    return (run && run.padding) || (layer.receptive_field && layer.receptive_field.padding) || "zeros";
  }

  /* A hit's patch fitted into a `side` x `side` cell of ctx at (x, y), centred, as fit_cell does. */
  function drawCell(ctx, img, hit, mode, x, y, side) {
    const [top, left, bottom, right] = hit.box;
    const scale = side / Math.max(bottom - top, right - left);
    const w = Math.max(1, Math.round((right - left) * scale)), h = Math.max(1, Math.round((bottom - top) * scale));
    drawPatch(ctx, img, hit.box, mode, fillColour(), x + ((side - w) >> 1), y + ((side - h) >> 1), scale);
  }

  /* Hits of unit number `unitNo` (its top hits or its bottom hits) as a grid (rank 0 top left) on
     `canvas`, sized like the atlas's grid PNGs. */
  async function drawGrid(canvas, layer, unitNo, hits) {
    const { cell, gap, grid } = state.manifest.render;
    const urls = hits.map((hit) => atlasUrl(hit.image_file));
    const imgs = await Promise.all(urls.map((url) => (url ? loadImage(url) : Promise.reject(new Error("bad image path")))));
    const ctx = canvas.getContext("2d");
    const mode = paddingOf(layer, unitNo);
    hits.forEach((hit, rank) => {
      const row = Math.floor(rank / grid[1]), col = rank % grid[1];
      drawCell(ctx, imgs[rank], hit, mode, col * (cell + gap), row * (cell + gap), cell);
    });
    canvas.dataset.drawn = "1";
  }

  /* A unit's top patches as a layer's card draws them: a canvas, drawn (data-drawn="1") once the
     layer's records are loaded; null for a layer the atlas lacks or a unit it does not have. */
  function unitPatches(layerName, unitNo) {
    if (!state.layerIndex.has(layerName)) return null;
    const index = state.layerIndex.get(layerName), layer = state.manifest.layers[index];
    if (!Number.isInteger(unitNo) || unitNo < 0 || unitNo >= layer.units) return null;
    const { width, height } = gridSize();
    const canvas = el("canvas", { class: "grid", width, height, role: "img", "aria-label": `top patches of ${layerName} unit ${unitNo}` });
    loadLayer(index).then((layerData) => {
      const unit = layerData.units.find((u) => u.unit === unitNo);
      if (!unit || !unit.hits.length) { canvas.classList.add("empty"); return null; }
      return drawGrid(canvas, layer, unitNo, unit.hits);
    }).catch(() => canvas.classList.add("broken"));
    return canvas;
  }

  /* A unit's strongest patch, `side` CSS pixels, and its suggested label: a <span class="unit-thumb">
     that is filled (data-drawn="1" on the canvas) once the layer's records are loaded; `onLabel`
     gets the label's name (a string from the data: put it in as text) where the unit has one. */
  function unitThumb(layerName, unitNo, side, onLabel) {
    const slot = el("span", { class: "unit-thumb" });
    slot.style.width = slot.style.height = `${side}px`;
    if (!state.layerIndex.has(layerName)) { slot.classList.add("empty"); return slot; }
    const index = state.layerIndex.get(layerName), layer = state.manifest.layers[index];
    loadLayer(index).then((layerData) => {
      const unit = layerData.units.find((u) => u.unit === unitNo);
      if (!unit) { slot.classList.add("empty"); return; }
      if (onLabel && isObject(unit.stats) && isObject(unit.stats.label)) onLabel(String(unit.stats.label.name), CONFIDENT.has(unit.stats.label.confidence));
      if (!unit.hits.length) { slot.classList.add("empty"); return; }
      const canvas = patchCanvas(layer, unitNo, unit.hits[0], side);
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `top patch of ${layerName} unit ${unitNo}`);
      slot.append(canvas);
    }).catch(() => slot.classList.add("broken"));
    return slot;
  }

  /* One hit's patch at one canvas pixel per image pixel (up to PICTURE_SIDE), shown `display` wide. */
  function patchCanvas(layer, unit, hit, display) {
    return boxCanvas(hit, atlasUrl(hit.image_file), paddingOf(layer, unit), fillColour(), display);
  }

  /* The patch of `hit.box` cut out of the image at `url` (null: none), past the border as padding
     `mode` shows it (`fill` for zero padding), one canvas pixel per image pixel up to PICTURE_SIDE,
     shown `display` CSS pixels on its longer side; data-drawn="1" once drawn. */
  function boxCanvas(hit, url, mode, fill, display) {
    const [top, left, bottom, right] = hit.box;
    const scale = Math.min(1, PICTURE_SIDE / Math.max(bottom - top, right - left));
    const canvas = el("canvas", { class: "patch", width: Math.max(1, Math.round((right - left) * scale)), height: Math.max(1, Math.round((bottom - top) * scale)) });
    const fit = display / Math.max(canvas.width, canvas.height);
    canvas.style.width = `${canvas.width * fit}px`;
    canvas.style.height = `${canvas.height * fit}px`;
    canvas.dataset.box = hit.box.join(",");
    if (url) {
      loadImage(url).then((img) => {
        drawPatch(canvas.getContext("2d"), img, hit.box, mode, fill, 0, 0, scale);
        canvas.dataset.drawn = "1";
      }, () => canvas.classList.add("broken"));
    } else {
      canvas.classList.add("broken");
    }
    return canvas;
  }

  /* ---------- header and layer list ---------- */

  function describeShape(layer) {
    return Array.isArray(layer.shape) ? `${layer.shape[0]} × ${layer.shape[1]} × ${layer.shape[2]}` : "?";
  }

  function fieldText(rf) {
    const mode = rf.padding && rf.padding !== "zeros" ? `, ${rf.padding} padding` : "";
    if (rf.stride[0] === 0 && rf.stride[1] === 0) return `whole image${mode}`;
    return `${rf.size[0]}×${rf.size[1]}, stride ${rf.stride[0]}×${rf.stride[1]}, offset ${rf.offset[0]},${rf.offset[1]}${mode}`;
  }

  /* The layer's field; a layer whose units come from branches with different fields lists its runs. */
  function describeField(layer) {
    if (layer.receptive_field) return fieldText(layer.receptive_field);
    const runs = layer.receptive_fields;
    if (!Array.isArray(runs) || !runs.length) return "whole input (not local)";
    return "per unit: " + runs.map((r) => `units ${r.units[0]}–${r.units[1] - 1}: ${fieldText(r)}`).join("; ");
  }

  function renderHeader() {
    const m = state.manifest;
    const model = m.model || {};
    const dataset = m.dataset || {};
    $("model-source").textContent = model.source || "";
    document.title = `convscope · ${model.source || "atlas"}`;
    const facts = $("facts");
    const fact = (label, value) => el("span", { class: "fact" }, el("b", { text: label }), " ", value);
    facts.append(fact("images", `${dataset.image_count ?? "?"} from ${dataset.root ?? "?"}`));
    if (Array.isArray(dataset.labels)) facts.append(fact("classes", String(dataset.labels.length)));
    if (model.weights) facts.append(fact("weights", String(model.weights)));
    if (model.training && typeof model.training.accuracy === "number") {
      facts.append(fact("accuracy", `${(100 * model.training.accuracy).toFixed(1)}%`));
    }
    facts.append(fact("k", String(m.k)));
    facts.append(fact("projection", m.projection || "none"));
    const skipped = Array.isArray(dataset.skipped) ? dataset.skipped : [];
    if (skipped.length) {
      const list = el("ul", { class: "skipped-list" });
      for (const item of skipped) list.append(el("li", null, el("code", { text: item.path }), " — ", item.reason));
      facts.append(el("details", { class: "fact skipped" }, el("summary", null, el("b", { text: "skipped" }), ` ${skipped.length} file${skipped.length === 1 ? "" : "s"}`), list));
    } else {
      facts.append(fact("skipped", "0 files"));
    }
    if (m.created) facts.append(fact("created", String(m.created)));

    const nav = $("layer-list");
    const names = $("layer-names");
    m.layers.forEach((layer, index) => {
      state.layerIndex.set(layer.name, index);
      nav.append(el("a", { class: "layer-link", href: routeHash(layer.name), "data-layer": String(index) },
        el("span", { class: "layer-name", text: layer.name }),
        el("span", { class: "layer-meta", text: `${layer.type || ""} ${describeShape(layer)}` }),
        el("span", { class: "layer-meta", text: `RF ${describeField(layer)}` })));
      names.append(el("option", { value: layer.name }));
    });
    if (state.explain) nav.append(...state.explain.navLinks());
    if (state.classes) nav.append(...state.classes.navLinks());
    if (state.views) nav.append(...state.views.navLinks());
    if (state.circuits) nav.append(...state.circuits.navLinks());
  }

  function markCurrentLayer(index) {
    for (const link of document.querySelectorAll(".layer-link")) {
      link.classList.toggle("current", link.getAttribute("data-layer") === String(index));
    }
  }

  /* ---------- views ---------- */

  function setMain(view, ...children) {
    if (state.observer) state.observer.disconnect();
    state.observer = null;
    const main = $("main");
    main.replaceChildren(...children.filter((child) => child !== null && child !== undefined && child !== false));
    main.setAttribute("data-view", view);
    return main;
  }

  function renderHome() {
    markCurrentLayer(-1);
    const rows = state.manifest.layers.map((layer) => el("tr", null,
      el("td", null, el("a", { href: routeHash(layer.name), text: layer.name })),
      el("td", { text: layer.type || "" }),
      el("td", { text: describeShape(layer) }),
      el("td", { text: describeField(layer) })));
    const table = el("table", { class: "layer-table" },
      el("thead", null, el("tr", null, ...["layer", "type", "units × rows × cols", "receptive field"].map((t) => el("th", { text: t })))),
      el("tbody", null, ...rows));
    const overview = el("img", { class: "overview", src: "overview.png", alt: "overview: top patches of a few units per layer" });
    overview.onerror = () => overview.remove();
    setMain("home", el("h1", { text: "Layers" }), table, ...(state.explain ? state.explain.homeSection() : []), ...(state.classes ? state.classes.homeSection() : []), ...(state.views ? state.views.homeSection() : []),
      ...(state.circuits ? state.circuits.homeSection() : []), ...depthSection(),
      el("h2", { text: "Overview" }), overview);
  }

  /* The layers' summaries over depth (version 3) as a table, and statistics.png when the atlas has it. */
  function depthSection() {
    const m = state.manifest;
    const layers = m.layers.filter((layer) => isObject(layer.summary));
    if (!layers.length) return [];
    const classes = layers.some((layer) => layer.summary.selectivity !== undefined);
    const columns = [
      ["dead", "dead", pct, true], ["always_on", "always on", pct, true], ["firing_rate", "firing rate", pct, true],
      ...(classes ? [["selectivity", "selectivity", num2, true], ["purity", "purity", pct, true],
        ["label_agreement", "label agreement", pct, true], ["confident_labels", "labelled", null, false]] : []),
    ];
    const cell = (layer, [key, , show, bar]) => {
      const value = layer.summary[key];
      if (!show) {  // a count of units
        return el("td", { class: "num", text: isNum(value) ? `${value} of ${layer.units}` : "—" });
      }
      const td = el("td", { class: "num" }, el("span", { class: "num-text", text: show(value) }));
      if (bar && isNum(value)) {
        const fill = el("span", { class: "fill" });
        fill.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
        td.append(el("span", { class: "mini-bar", "aria-hidden": "true" }, fill));
      }
      return td;
    };
    const rows = layers.map((layer) => el("tr", { "data-layer": layer.name },
      el("td", null, el("a", { href: routeHash(layer.name), text: layer.name })),
      el("td", { class: "num", text: String(layer.units) }),
      ...columns.map((column) => cell(layer, column))));
    const table = el("table", { class: "layer-table depth-table" },
      el("thead", null, el("tr", null, el("th", { text: "layer" }), el("th", { class: "num", text: "units" }),
        ...columns.map(([, text]) => el("th", { class: "num", text })))),
      el("tbody", null, ...rows));
    const notes = "dead: never above zero on these images; always on: above zero on every image; firing rate: share of images where a unit is ever above zero" +
      (classes ? "; selectivity: Morcos et al.'s class selectivity index; purity: share of the top hits in the unit's top class; label agreement: share of the top hits with the suggested label; labelled: units whose suggested label has high or medium confidence" : "") +
      " (means over the layer's units).";
    const parts = [el("h2", { text: "Units over depth" }), table, el("p", { class: "note table-note", text: notes })];
    const url = typeof m.statistics_figure === "string" ? atlasUrl(m.statistics_figure) : null;
    if (url) {
      const figure = el("figure", { class: "statistics" },
        el("img", { class: "statistics-figure", src: url, alt: "the layers' summaries over depth" }));
      figure.querySelector("img").onerror = () => figure.remove();
      parts.push(figure);
    }
    return parts;
  }

  function renderMissing(message) {
    markCurrentLayer(-1);
    setMain("missing", el("p", { class: "note error", text: message }), el("p", null, el("a", { href: "#", text: "Back to the layer list" })));
  }

  /* Badges for a unit never above zero or above zero on every image. */
  function flagBadges(stats) {
    if (!isObject(stats)) return [];
    return [
      stats.dead === true ? el("span", { class: "badge dead", text: "dead", title: "never above zero on these images" }) : null,
      stats.always_on === true ? el("span", { class: "badge always-on", text: "always on", title: "above zero on every image" }) : null,
    ].filter(Boolean);
  }

  function unitCard(layer, unit, labels, sort) {
    const top = unit.hits.length ? fmt(unit.hits[0].activation) : "no hits";
    const card = el("a", { class: "card", href: routeHash(layer.name, unit.unit), "data-unit": String(unit.unit) },
      el("div", { class: "card-head" }, el("span", { class: "unit-no", text: `#${unit.unit}` }), ...flagBadges(unit.stats),
        el("span", { class: "act", text: top, title: "strongest activation" })));
    const images = el("div", { class: "card-images" });
    const { width, height } = gridSize();
    if (state.manifest.featurevis && isObject(unit.featurevis)) {  // the optimised image first, as Microscope shows it
      const img = el("img", { class: "grid featurevis", alt: "optimised image", width: height, height, decoding: "async" });
      img.dataset.src = gridUrl(layer.name, unit.unit, false, "-featurevis");
      images.append(img);
    }
    if (unit.hits.length) {
      images.append(el("canvas", { class: "grid", width, height, role: "img", "aria-label": "patches" }));
      if (state.manifest.projection) {
        const img = el("img", { class: "grid", alt: "projections", width, height, decoding: "async" });
        img.dataset.src = gridUrl(layer.name, unit.unit, true);
        images.append(img);
      }
    }
    card.append(images);
    if (isObject(unit.stats)) {
      card.append(statsFoot(unit.stats, sort));
    } else if (labels && unit.hits.length) {
      const counts = labelCounts(unit);
      const foot = counts.length ? `${counts[0][0]} ${Math.round(100 * selectivity(unit))}%` : "unlabelled";
      card.append(el("div", { class: "card-foot", text: foot }));
    }
    return card;
  }

  /* A card's foot with statistics: the suggested label's name, and the value the layer is sorted by. */
  function statsFoot(stats, sort) {
    const label = isObject(stats.label) ? stats.label : null;
    const name = label
      ? el("span", { class: `card-label conf-${CONFIDENT.has(label.confidence) && !constant(stats) ? label.confidence : "weak"}`, text: String(label.name),
        title: `${label.text} (${confidenceText(String(label.confidence))})` })
      : el("span", { class: "card-label none", text: stats.label === null ? "no label" : "" });
    const stat = STAT_SORTS[sort];
    const value = stat && stat.key ? el("span", { class: "card-stat", text: `${stat.short} ${stat.show(stat.key(stats))}` }) : null;
    return el("div", { class: "card-foot stats-foot" }, name, value);
  }

  function gridSize() {
    const { cell, gap, grid } = state.manifest.render;
    return { width: grid[1] * cell + (grid[1] - 1) * gap, height: grid[0] * cell + (grid[0] - 1) * gap };
  }

  /* Pictures of the cards near the viewport, drawn when they come near. */
  function observeImages(container, layer, units) {
    const byNumber = new Map(units.map((u) => [u.unit, u]));
    state.observer = new IntersectionObserver((entries, observer) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        for (const img of entry.target.querySelectorAll("img[data-src]")) {
          img.src = img.dataset.src;
          img.removeAttribute("data-src");
        }
        const canvas = entry.target.querySelector("canvas.grid");
        const unit = byNumber.get(Number(entry.target.getAttribute("data-unit")));
        if (canvas && unit) drawGrid(canvas, layer, unit.unit, unit.hits).catch(() => canvas.classList.add("broken"));
        observer.unobserve(entry.target);
      }
    }, { rootMargin: "100px 0px" });
    for (const card of container.children) state.observer.observe(card);
  }

  function renderLayer(index, layerData, focusUnit) {
    const layer = state.manifest.layers[index];
    const labels = hasLabels(layerData);
    const { units, sort, filter } = unitsInView(layerData);
    state.order = units.map((u) => u.unit);
    markCurrentLayer(index);
    const again = () => renderLayer(index, layerData);

    const select = el("select", { id: "sort", "aria-label": "Sort units" },
      ...sortChoices(layerData).map(([value, s]) => el("option", { value, text: s.text })));
    select.value = sort;
    select.onchange = () => { state.sort = select.value; again(); };
    const controls = el("div", { class: "controls" });
    const filters = filterChoices(layerData);
    if (filters.length) {
      const count = (f) => layerData.units.filter((u) => isObject(u.stats) && f.test(u.stats)).length;
      const choose = el("select", { id: "filter", "aria-label": "Show units" },
        ...filters.map(([value, f]) => el("option", { value, title: f.title, text: value === "all" ? `${f.text} (${layerData.units.length})` : `${f.text} (${count(f)})` })));
      choose.value = filter;
      choose.onchange = () => { state.filter = choose.value; again(); };
      controls.append(el("label", { class: "sort" }, "show ", choose));
    }
    controls.append(el("label", { class: "sort" }, "sort by ", select));
    const stat = hasStats(layerData) ? STAT_SORTS[sort] : null;
    if (stat && stat.key) {
      const direction = el("button", { type: "button", id: "sort-direction", class: "direction", text: state.ascending ? "↑ lowest first" : "↓ highest first",
        title: "reverse the order" });
      direction.onclick = () => { state.ascending = !state.ascending; again(); };
      controls.append(direction);
    }

    const cards = el("div", { class: "cards" });
    for (const unit of units) cards.append(unitCard(layer, unit, labels, sort));
    const empty = units.length ? null : el("p", { class: "note empty", text: `No unit of ${layer.name} is ${FILTERS[filter].text}.` });
    setMain("layer",
      el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ", el("span", { text: layer.name })),
      el("div", { class: "layer-head" },
        el("h1", { text: layer.name }),
        el("span", { class: "layer-facts", text: `${layer.type || ""} · ${describeShape(layer)} · RF ${describeField(layer)} · ${layerData.units.length} units` }),
        controls),
      layerSummary(layer),
      empty,
      cards);
    observeImages(cards, layer, units);
    state.cursor = focusUnit === undefined ? -1 : state.order.indexOf(focusUnit);
    if (state.cursor >= 0) highlightCard(true);
    else window.scrollTo(0, 0);
  }

  /* The layer's summary (version 3) as one line of facts. */
  function layerSummary(layer) {
    const s = layer.summary;
    if (!isObject(s)) return null;
    const fact = (label, value, title) => el("span", { class: "summary-fact", title }, el("b", { text: value }), ` ${label}`);
    const facts = [
      fact("dead", pct(s.dead), "share of units never above zero on these images"),
      fact("always on", pct(s.always_on), "share of units above zero on every image"),
      fact("firing rate", pct(s.firing_rate), "mean over units of the share of images where a unit is ever above zero"),
    ];
    if (s.selectivity !== undefined) {
      facts.push(
        fact("selectivity", num2(s.selectivity), "mean class selectivity index (Morcos et al. 2018) over the units"),
        fact("purity", pct(s.purity), "mean share of a unit's top hits in its top class"),
        fact("label agreement", pct(s.label_agreement), "mean share of a unit's top hits with its suggested label"),
        fact("labelled", isNum(s.confident_labels) ? `${s.confident_labels} of ${layer.units}` : "—", "units whose suggested label has high or medium confidence"),
        el("span", { class: "legend" }, el("span", { class: "card-label conf-high", text: "high" }), " ",
          el("span", { class: "card-label conf-medium", text: "medium" }), " ", el("span", { class: "card-label conf-weak", text: "low or none" }), " label confidence"));
    }
    return el("div", { class: "layer-summary" }, ...facts);
  }

  function highlightCard(scroll) {
    const cards = document.querySelectorAll(".cards .card");
    cards.forEach((card, i) => card.classList.toggle("cursor", i === state.cursor));
    if (scroll && cards[state.cursor]) cards[state.cursor].scrollIntoView({ block: "nearest" });
  }

  function patchNode(url, rank, scale, className) {
    const { cell, gap, grid } = state.manifest.render;
    const cols = grid[1];
    const { width, height } = gridSize();
    const row = Math.floor(rank / cols), col = rank % cols;
    const node = el("div", { class: className, role: "img" });
    node.style.width = node.style.height = `${cell * scale}px`;
    node.style.backgroundImage = `url("${url}")`;
    node.style.backgroundSize = `${width * scale}px ${height * scale}px`;
    node.style.backgroundPosition = `${-col * (cell + gap) * scale}px ${-row * (cell + gap) * scale}px`;
    return node;
  }

  /* The source image with the hit's box drawn, clipped to the image; a note when clipped. */
  function sourceNode(hit) {
    const size = (state.manifest.preprocess && state.manifest.preprocess.input_size) || [224, 224];
    const frame = el("div", { class: "source" });
    const url = atlasUrl(hit.image_file);
    const img = el("img", { alt: "source image", loading: "lazy", decoding: "async" });
    if (url) img.src = url;
    const box = el("div", { class: "box" });
    frame.append(img, box);
    const note = el("div", { class: "box-note" });
    const place = (rows, cols) => {
      const [top, left, bottom, right] = hit.box;
      const t = Math.max(0, top), l = Math.max(0, left), b = Math.min(rows, bottom), r = Math.min(cols, right);
      box.style.top = `${(100 * t) / rows}%`;
      box.style.left = `${(100 * l) / cols}%`;
      box.style.height = `${(100 * Math.max(0, b - t)) / rows}%`;
      box.style.width = `${(100 * Math.max(0, r - l)) / cols}%`;
      const clipped = top < 0 || left < 0 || bottom > rows || right > cols;
      box.classList.toggle("clipped", clipped);
      note.textContent = clipped
        ? `box [${hit.box.join(", ")}) reaches past the ${cols}×${rows} image (padding the network saw); drawn clipped`
        : `box [${hit.box.join(", ")})`;
    };
    place(size[0], size[1]);
    img.onload = () => place(img.naturalHeight, img.naturalWidth);
    return [frame, note];
  }

  function histogram(unit, title) {
    const counts = labelCounts(unit);
    if (!counts.length) return null;
    const max = counts[0][1];
    const rows = counts.map(([label, count]) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = `${(100 * count) / max}%`;
      return el("div", { class: "hist-row" }, el("span", { class: "hist-label", text: label }),
        el("span", { class: "hist-bar" }, bar), el("span", { class: "hist-count", text: `${count}/${unit.hits.length}` }));
    });
    return el("section", { class: "histogram" }, el("h2", { text: title || "Classes of the hits" }), ...rows);
  }

  /* One hit as an article: its patch (drawn from the stored image), its projection (top hits of an
     atlas with projections), the source image with the box, path, label and position. */
  function hitArticle(layer, unitNo, hit, bottom) {
    const scale = Math.max(1, Math.round(128 / state.manifest.render.cell));
    const projection = !bottom && Boolean(state.manifest.projection);
    const pictures = el("div", { class: "hit-pictures" },
      el("figure", null, patchCanvas(layer, unitNo, hit, state.manifest.render.cell * scale), el("figcaption", { text: "patch" })),
      projection ? el("figure", null, patchNode(gridUrl(layer.name, unitNo, true), hit.rank, scale, "patch"), el("figcaption", { text: state.manifest.projection })) : null,
      el("figure", null, ...sourceNode(hit)));
    const label = hit.label === null || hit.label === undefined ? null : el("div", { class: "hit-label" }, "label ", el("b", { text: hit.label }));
    return el("article", { class: bottom ? "hit bottom-hit" : "hit", [bottom ? "data-bottom-rank" : "data-rank"]: String(hit.rank) },
      el("div", { class: "hit-head" }, el("span", { class: "rank", text: `${bottom ? "bottom" : "rank"} ${hit.rank}` }), el("span", { class: "act", text: fmt(hit.activation) })),
      pictures,
      el("div", { class: "hit-path", text: hit.image }),
      label,
      el("div", { class: "hit-pos", text: `row ${hit.row}, col ${hit.col}` }));
  }

  const BOTTOM_KINDS = {
    min: ["most negative activations", "each image's most negative activation of this unit, the most negative first"],
    max: ["images where it stays weakest", "this unit is never below zero: the images whose strongest activation is lowest, the lowest first"],
  };

  function renderUnit(index, layerData, unitNo) {
    const layer = state.manifest.layers[index];
    const unit = layerData.units.find((u) => u.unit === unitNo);
    if (!unit) { renderMissing(`layer ${layer.name} has no unit ${unitNo}`); return; }
    const labels = hasLabels(layerData);
    const view = unitsInView(layerData);
    let order = view.units.map((u) => u.unit), filtered = view.filter !== "all";
    if (!order.includes(unitNo)) { order = sortedUnits(layerData, view.sort).map((u) => u.unit); filtered = false; }  // a unit the filter hides
    state.order = order;
    markCurrentLayer(index);
    const position = state.order.indexOf(unitNo);
    const prev = state.order[position - 1], next = state.order[position + 1];
    const stats = isObject(unit.stats) ? unit.stats : null;
    const bottom = Array.isArray(unit.bottom) ? unit.bottom : null;

    const hits = unit.hits.map((hit) => hitArticle(layer, unitNo, hit, false));
    const inOrder = `${position + 1} of ${state.order.length}${filtered ? ` ${FILTERS[view.filter].text}` : ""} by ${sortText(layerData, view.sort)}`;
    const bottomSection = bottom ? bottomHits(layer, unit, bottom) : null;
    setMain("unit",
      el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ",
        el("a", { href: routeHash(layer.name), text: layer.name }), " / ", el("span", { text: `unit ${unitNo}` })),
      el("div", { class: "unit-head" },
        el("h1", { text: `${layer.name} · unit ${unitNo}` }),
        stats ? unitLabel(stats) : null,
        ...flagBadges(stats),
        el("nav", { class: "step" },
          prev === undefined ? el("span", { class: "disabled", text: "← previous" }) : el("a", { href: routeHash(layer.name, prev), text: `← #${prev}` }),
          el("span", { text: inOrder }),
          next === undefined ? el("span", { class: "disabled", text: "next →" }) : el("a", { href: routeHash(layer.name, next), text: `#${next} →` }))),
      stats && isObject(stats.label) ? el("p", { class: "label-text" }, el("span", { text: String(stats.label.text) }),
        el("span", { class: "chance", text: ` · chance of this agreement ${isNum(stats.label.chance) ? stats.label.chance.toPrecision(2) : "—"}` }),
        constant(stats) ? el("span", { class: "warning", text: ` · every image gives this unit ${fmt(stats.min)}: its hits are ties in image order, so this label means nothing` }) : null) : null,
      el("div", { class: "unit-facts" },
        el("span", { text: `mean strongest activation per image ${fmt(unit.mean)}` }),
        el("span", { text: `${unit.hits.length} hits` }),
        !stats && labels && unit.hits.length ? el("span", { text: `selectivity ${Math.round(100 * selectivity(unit))}%` }) : null),
      stats ? statsPanel(layer, layerData, unit, stats, bottomSection) : (labels ? histogram(unit) : null),
      state.manifest.featurevis && isObject(unit.featurevis) ? featureVisFigure(layer, unitNo, unit.featurevis) : null,
      state.manifest.occlusion && unit.hits.length ? el("figure", { class: "occlusion" },
        el("img", { src: gridUrl(layer.name, unitNo, false, "-occlusion"), alt: "occlusion map of the top hit" }),
        el("figcaption", { text: "Occlusion of the top hit: red where a grey square over the box lowers the activation, blue where it raises it; the square that lowers it most is outlined in yellow." })) : null,
      state.explain ? state.explain.unitSection(layer.name, unitNo) : null,
      state.classes ? state.classes.unitSection(layer.name, unitNo) : null,
      state.circuits ? state.circuits.unitSection(layer.name, unitNo) : null,
      state.views ? state.views.unitSection(layer.name, unitNo) : null,
      bottom ? el("h2", { class: "section-title", text: "Top hits: strongest activations" }) : null,
      unit.hits.length ? el("div", { class: "hits" }, ...hits) : el("p", { class: "note", text: "This unit has no hits." }),
      bottomSection,
      state.manifest.padding ? el("p", { class: "note padding", text: `Padding: ${state.manifest.padding}` }) : null);
    window.scrollTo(0, 0);
  }

  /* The image optimised for the unit, with how far it drives the unit against its top dataset hit. */
  function featureVisFigure(layer, unitNo, vis) {
    const ratio = isNum(vis.ratio) ? `${vis.ratio.toFixed(2)}× the activation of its top hit` : "no top hit to compare with";
    return el("figure", { class: "featurevis" },
      el("img", { src: gridUrl(layer.name, unitNo, false, "-featurevis"), alt: "image optimised for this unit" }),
      el("figcaption", null,
        el("span", { text: `Optimised image (feature visualisation, ${state.manifest.featurevis} steps): what the unit responds to at the centre with nothing else in the way. Its strongest activation there, ${fmt(vis.reached)}, is ${ratio}.` }),
        vis.below_top === true ? el("span", { class: "warning", text: " Below the top hit: the optimisation fell short for this unit." }) : null));
  }

  /* The suggested label, large, with its confidence word; "no label" when the unit has none. */
  function unitLabel(stats) {
    if (!("label" in stats)) return null;  // an atlas without labels
    const label = stats.label;
    if (!isObject(label)) return el("span", { class: "unit-label none", text: "no label" });
    const confidence = String(label.confidence), strong = CONFIDENT.has(confidence);
    return el("span", { class: `unit-label${strong ? "" : " weak"}${constant(stats) ? " moot" : ""}`, title: "suggested label: the most common label among the top hits" },
      el("span", { class: "label-name", text: String(label.name) }),
      el("span", { class: `badge conf conf-${strong ? confidence : "weak"}`, text: confidenceText(confidence) }));
  }

  /* "high confidence", ...; "no confidence" for "none" (agreement as likely as chance). */
  function confidenceText(confidence) {
    return confidence === "none" ? "no confidence" : `${confidence} confidence`;
  }

  /* Every image gives the unit the same value: its hits are ties, in image order, and their label says nothing. */
  const constant = (stats) => isNum(stats.min) && stats.min === stats.max;

  /* The unit's statistics: distribution, class means, hit classes, and its top and bottom hits at a glance. */
  function statsPanel(layer, layerData, unit, stats, bottomSection) {
    const cards = [distributionCard(layerData, stats)];
    const hits = histogram(unit, `Labels of the top ${unit.hits.length} hits`);
    if (Array.isArray(stats.classes)) cards.push(classesCard(unit, stats, hits));
    else if (hits) { hits.classList.add("stat-card"); cards.push(hits); }
    if (bottomSection) cards.push(glanceCard(layer, unit, bottomSection));
    return el("section", { class: "unit-stats" }, ...cards);
  }

  const HIST_BAR = "#2457c5";   // the bars' colour (var(--accent))
  const HIST_HEIGHT = 96;

  /* stats.histogram (equal bins from min to max) as bars on a canvas: bin i fills columns
     [i * w, (i + 1) * w - 1) and rows from the bottom up to round(HIST_HEIGHT * count / most) (at
     least 1 for a non-empty bin, so a lone image shows); the median and zero are marked above it. */
  function distributionCard(layerData, stats) {
    const counts = Array.isArray(stats.histogram) ? stats.histogram.map((c) => (isNum(c) ? c : 0)) : [];
    const { min, max } = stats;
    const card = el("section", { class: "stat-card distribution" }, el("h2", { text: "Strongest activation per image" }));
    const images = counts.reduce((a, b) => a + b, 0);
    if (counts.length && isNum(min) && isNum(max)) {
      const most = Math.max(...counts, 1), w = Math.max(3, Math.floor(320 / counts.length)), span = max - min;
      const canvas = el("canvas", { class: "hist-canvas", width: counts.length * w, height: HIST_HEIGHT, role: "img",
        "aria-label": `histogram of ${images} images in ${counts.length} bins from ${fmt(min)} to ${fmt(max)}`, "data-bin-width": String(w) });
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = HIST_BAR;
      counts.forEach((count, i) => {
        const height = count > 0 ? Math.max(1, Math.round((HIST_HEIGHT * count) / most)) : 0;
        if (height) ctx.fillRect(i * w, HIST_HEIGHT - height, w - 1, height);
      });
      const binText = (i) => `${fmt(min + (i * span) / counts.length)} to ${fmt(min + ((i + 1) * span) / counts.length)}: ${counts[i]} image${counts[i] === 1 ? "" : "s"}`;
      const readout = el("span", { class: "legend" });
      const legend = [`${images.toLocaleString("en-US")} images`];
      const frame = el("div", { class: "hist-frame" }, canvas);
      const mark = (x, name, title) => {
        const line = el("span", { class: `hist-mark ${name}`, title });
        line.style.left = `${(100 * (x - min)) / span}%`;
        frame.append(line);
      };
      const median = quantileAt(layerData, stats, 0.5);
      if (span > 0 && min < 0 && max > 0) { mark(0, "zero", "zero"); legend.push("dashed: 0"); }
      if (span > 0 && isNum(median)) { mark(median, "median", `median ${fmt(median)}`); legend.push("line: median"); }
      readout.textContent = legend.join(" · ");
      canvas.onmousemove = (event) => {
        const i = Math.min(counts.length - 1, Math.max(0, Math.floor((event.offsetX / canvas.clientWidth) * counts.length)));
        readout.textContent = binText(i);
      };
      canvas.onmouseleave = () => { readout.textContent = legend.join(" · "); };
      card.append(frame, el("div", { class: "hist-axis" }, el("span", { text: fmt(min) }), readout, el("span", { text: fmt(max) })));
    }
    card.append(el("div", { class: "stat-facts" },
      el("span", null, "mean ", el("b", { text: fmt(stats.mean) }), isNum(stats.std) ? ` ± ${fmt(stats.std)}` : ""),
      el("span", null, "firing rate ", el("b", { text: pct(stats.firing_rate) }))));
    const levels = Array.isArray(layerData.quantile_levels) ? layerData.quantile_levels : [];
    const values = Array.isArray(stats.quantiles) ? stats.quantiles : [];
    if (levels.length && values.length) {
      card.append(el("div", { class: "quantiles", "aria-label": "quantiles" },
        ...levels.map((q, i) => el("div", { class: "q", "data-level": String(q) },
          el("span", { class: "q-level", text: level(q) }), el("span", { class: "q-value", text: fmt(values[i] ?? null) })))));
    }
    if (layerData.exact === false) card.append(el("p", { class: "note small", text: "Quantiles and histogram from a sketch: within 0.1% of rank." }));
    return card;
  }

  function quantileAt(layerData, stats, q) {
    const levels = Array.isArray(layerData.quantile_levels) ? layerData.quantile_levels : [];
    const i = levels.indexOf(q);
    return i >= 0 && Array.isArray(stats.quantiles) ? stats.quantiles[i] : null;
  }

  /* stats.classes as horizontal bars named from the dataset's labels, the overall mean marked. */
  function classesCard(unit, stats, hitLabels) {
    const classes = stats.classes.filter((c) => Array.isArray(c) && c.length === 2);
    const scale = Math.max(...classes.map(([, m]) => (isNum(m) ? Math.abs(m) : 0)), isNum(stats.mean) ? Math.abs(stats.mean) : 0) || 1;
    const labels = state.manifest.dataset && state.manifest.dataset.labels;
    const total = Array.isArray(labels) ? labels.length : null;
    const rows = classes.map(([index, mean]) => {
      const bar = el("span", { class: `bar${isNum(mean) && mean < 0 ? " negative" : ""}` });
      bar.style.width = `${(100 * (isNum(mean) ? Math.abs(mean) : 0)) / scale}%`;
      const track = el("span", { class: "hist-bar" }, bar);
      if (isNum(stats.mean) && stats.mean > 0) {
        const marker = el("span", { class: "mean-marker", title: `mean over all images ${fmt(stats.mean)}` });
        marker.style.left = `${(100 * stats.mean) / scale}%`;
        track.append(marker);
      }
      return el("div", { class: `hist-row class-row${index === stats.top_class ? " top" : ""}`, "data-class": String(index) },
        el("span", { class: "hist-label", text: className(index), title: className(index) }), track, el("span", { class: "hist-count", text: fmt(mean) }));
    });
    return el("section", { class: "stat-card classes" },
      el("h2", { text: total && total > classes.length ? `Class means (top ${classes.length} of ${total})` : "Class means" }),
      ...rows,
      el("p", { class: "note small", text: "Mean strongest activation over each class's images; the line marks the mean over all images." }),
      el("div", { class: "stat-facts" },
        el("span", null, "selectivity ", el("b", { text: num2(stats.selectivity) })),
        el("span", null, "top class ", el("b", { class: "top-class", text: Number.isInteger(stats.top_class) ? className(stats.top_class) : "—" })),
        el("span", null, "purity ", el("b", { text: pct(stats.purity) }))),
      hitLabels);
  }

  /* The top and the bottom hits as two grids, drawn like the layer view's cards. */
  function glanceCard(layer, unit, bottomSection) {
    const { width, height } = gridSize();
    const grid = (hits, name) => {
      const canvas = el("canvas", { class: `grid glance ${name}`, width, height, role: "img", "aria-label": `${name} hits` });
      if (hits.length) drawGrid(canvas, layer, unit.unit, hits).catch(() => canvas.classList.add("broken"));
      return canvas;
    };
    const kind = BOTTOM_KINDS[unit.bottom_kind];
    const jump = el("button", { type: "button", class: "link", text: "bottom hits in detail ↓" });
    jump.onclick = () => bottomSection.scrollIntoView({ block: "start" });
    return el("section", { class: "stat-card glance-card" },
      el("h2", { text: "Top and bottom hits" }),
      el("div", { class: "glance-grids" },
        el("figure", null, grid(unit.hits, "top"), el("figcaption", { text: "top: strongest first" })),
        el("figure", null, grid(unit.bottom, "bottom"), el("figcaption", { text: `bottom: ${kind ? kind[0] : "weakest"}` }))),
      jump);
  }

  /* The bottom hits, weakest first, drawn like the top hits (no projections: those are of the top hits). */
  function bottomHits(layer, unit, bottom) {
    const kind = BOTTOM_KINDS[unit.bottom_kind];
    return el("section", { class: "bottom", "data-kind": unit.bottom_kind == null ? null : String(unit.bottom_kind) },
      el("h2", { class: "section-title", text: kind ? `Bottom hits: ${kind[0]}` : "Bottom hits" }),
      kind ? el("p", { class: "note small", text: kind[1] + "." }) : null,
      bottom.length ? el("div", { class: "hits" }, ...bottom.map((hit) => hitArticle(layer, unit.unit, hit, true))) : el("p", { class: "note", text: "No bottom hits." }));
  }

  /* ---------- routing ---------- */

  function parseHash() {
    let hash = location.hash.slice(1);
    try { hash = decodeURIComponent(hash); } catch (e) { return { view: "missing", text: hash }; }
    if (!hash) return { view: "home" };
    if (hash.startsWith("/explain/")) return { view: "explanation", key: hash.slice("/explain/".length) };
    if (hash.startsWith("/circuit/")) return { view: "circuit", key: hash.slice("/circuit/".length) };
    if (hash.startsWith("/")) return { view: "analysis", folder: hash.slice(1) };
    if (state.layerIndex.has(hash)) return { view: "layer", layer: state.layerIndex.get(hash) };
    const slash = hash.lastIndexOf("/");
    const name = hash.slice(0, slash), unit = hash.slice(slash + 1);
    if (slash > 0 && state.layerIndex.has(name) && /^\d+$/.test(unit)) {
      return { view: "unit", layer: state.layerIndex.get(name), unit: Number(unit) };
    }
    return { view: "missing", text: hash };
  }

  async function route() {
    const token = ++state.token;
    const previous = state.route;
    const target = parseHash();
    state.route = target;
    if (target.view === "home") { renderHome(); return; }
    if (target.view === "missing") { renderMissing(`nothing in this atlas is called “${target.text}”`); return; }
    if (target.view === "explanation") {
      markCurrentLayer(-1);
      const shown = (state.classes && state.classes.render(target.key)) || (state.explain && state.explain.render(target.key));
      if (!shown) renderMissing(`this atlas has no explanation “${target.key}”`);
      else window.scrollTo(0, 0);
      return;
    }
    if (target.view === "circuit") {
      markCurrentLayer(-1);
      if (!state.circuits || !state.circuits.renderCircuit(target.key)) renderMissing(`this atlas has no circuit “${target.key}”`);
      else window.scrollTo(0, 0);
      return;
    }
    if (target.view === "analysis") {
      markCurrentLayer(-1);
      if (state.circuits && state.circuits.render(target.folder)) { window.scrollTo(0, 0); return; }
      if (!state.views || !state.views.render(target.folder)) renderMissing(`this atlas has no analysis folder “${target.folder}”`);
      else window.scrollTo(0, 0);
      return;
    }
    let layerData;
    try {
      layerData = await loadLayer(target.layer);
    } catch (error) {
      if (token === state.token) renderMissing(error.message);
      return;
    }
    if (token !== state.token) return;
    if (target.view === "layer") {
      const back = previous && previous.view === "unit" && previous.layer === target.layer ? previous.unit : undefined;
      renderLayer(target.layer, layerData, back);
    } else {
      renderUnit(target.layer, layerData, target.unit);
    }
  }

  function go(layerIndex, unit) {
    location.hash = routeHash(state.manifest.layers[layerIndex].name, unit);
  }

  /* ---------- search and keys ---------- */

  function search(text) {
    const query = text.trim();
    const message = $("search-message");
    message.textContent = "";
    const current = state.route && state.route.layer !== undefined ? state.route.layer : null;
    const colon = query.lastIndexOf(":");
    if (state.layerIndex.has(query)) { go(state.layerIndex.get(query)); return true; }
    if (colon > 0 && state.layerIndex.has(query.slice(0, colon)) && /^\d+$/.test(query.slice(colon + 1))) {
      const index = state.layerIndex.get(query.slice(0, colon));
      const unit = Number(query.slice(colon + 1));
      if (unit < state.manifest.layers[index].units) { go(index, unit); return true; }
      message.textContent = `${query.slice(0, colon)} has units 0–${state.manifest.layers[index].units - 1}`;
      return false;
    }
    if (/^\d+$/.test(query)) {
      if (current === null) { message.textContent = "open a layer first, or type layer:unit"; return false; }
      const unit = Number(query);
      if (unit < state.manifest.layers[current].units) { go(current, unit); return true; }
      message.textContent = `this layer has units 0–${state.manifest.layers[current].units - 1}`;
      return false;
    }
    message.textContent = `no layer or unit matches “${query}”`;
    return false;
  }

  // Keys act on the address, not on the last drawn view: a key pressed before the
  // previous key's hashchange was handled must step from where that key led.
  function stepUnit(delta) {
    const r = parseHash();
    if (!r || !state.order.length) return;
    if (r.view === "unit") {
      const next = state.order[state.order.indexOf(r.unit) + delta];
      if (next !== undefined) go(r.layer, next);
    } else if (r.view === "layer") {
      state.cursor = Math.min(state.order.length - 1, Math.max(0, state.cursor + delta));
      highlightCard(true);
    }
  }

  function stepLayer(delta) {
    const r = parseHash();
    const count = state.manifest.layers.length;
    const from = r && r.layer !== undefined ? r.layer : (delta > 0 ? -1 : count);
    const to = from + delta;
    if (to >= 0 && to < count) go(to);
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const r = parseHash();
    const unitKeys = r.view === "unit" ? ["ArrowRight", "ArrowDown"] : ["ArrowRight"];
    const backKeys = r.view === "unit" ? ["ArrowLeft", "ArrowUp"] : ["ArrowLeft"];
    let handled = true;
    if (event.key === "/") $("search-input").focus();
    else if (event.key === "[" || (event.shiftKey && event.key === "ArrowLeft")) stepLayer(-1);
    else if (event.key === "]" || (event.shiftKey && event.key === "ArrowRight")) stepLayer(1);
    else if (event.key === "j" || unitKeys.includes(event.key)) stepUnit(1);
    else if (event.key === "k" || backKeys.includes(event.key)) stepUnit(-1);
    else if (event.key === "Enter" && r.view === "layer" && state.cursor >= 0) go(r.layer, state.order[state.cursor]);
    else if (event.key === "Escape" && r.view === "unit") go(r.layer);
    else if (event.key === "Escape" && r.view !== "home") location.hash = "";
    else handled = false;
    if (handled) event.preventDefault();
  }

  /* The helpers viewer/analyses.js draws with (it keeps no state of its own but its data). */
  function analysisApi() {
    return {
      el, fmt, pct, num2, isNum, isObject, atlasUrl, folderUrl, dataScripts, boxCanvas, fillColour, routeHash, setMain, unitPatches, unitThumb,
      layerNamed: (name) => (state.layerIndex.has(name) ? state.manifest.layers[state.layerIndex.get(name)] : null),
    };
  }

  function start() {
    if (typeof window.convscopeAnalyses === "function") state.views = window.convscopeAnalyses(analysisApi(), state.analyses);
    if (typeof window.convscopeExplanations === "function") state.explain = window.convscopeExplanations(analysisApi(), state.explanations);
    if (typeof window.convscopeClasses === "function") state.classes = window.convscopeClasses(analysisApi(), state.explanations);
    if (typeof window.convscopeCircuits === "function") state.circuits = window.convscopeCircuits(analysisApi(), state.circuitFolders);
    renderHeader();
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("search-input");
      if (search(input.value)) input.blur();
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", route);
    route();
  }
})();
