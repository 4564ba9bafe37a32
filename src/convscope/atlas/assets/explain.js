/* convscope atlas viewer: the explanations kept inside the atlas (convscope explain ATLAS IMAGE).
 *
 * viewer/data/analyses.js registers each ATLAS/explain/<name>/explanation.json as
 * convscopeRegister("explanation", i, {folder: "explain/<name>", record}); once the manifest is in,
 * viewer.js calls window.convscopeExplanations(api, folders) and asks the object returned for the
 * home page's list, the side links, the route #/explain/<name> and a unit's "explained images".
 * An explanation page loads its folder's activations.js (every unit's activation map of every
 * layer: float16, zlib, base64) only when shown; a click or a drag on the image lists the units
 * whose receptive fields cover that region, strongest there first: the same computation as
 * convscope.explain.region.region_units, on the stored maps. Every string from the data goes
 * into the page as text, as in viewer.js. ("classes" records, a class's units over a folder, are
 * drawn by viewer/classes.js.)
 */
(function () {
  "use strict";

  const STAGE = 336;       // shown side of the image, CSS pixels
  const REGION_TOP = 10;   // units listed per layer under a selection
  const ACT_COLOUR = [255, 153, 0];

  /* float16 bits -> value, for all 65536 patterns (exact in float32). */
  let halfTable = null;
  function halves() {
    if (halfTable) return halfTable;
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 31, frac = h & 1023;
      let v;
      if (exp === 0) v = frac * Math.pow(2, -24);
      else if (exp === 31) v = frac ? NaN : Infinity;
      else v = (1 + frac / 1024) * Math.pow(2, exp - 15);
      halfTable[h] = sign * v;
    }
    return halfTable;
  }

  /* One stored map {layer, shape, dtype, data} -> {layer, shape, values: Float32Array}. */
  async function decodeMap(entry) {
    const text = atob(entry.data);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    const buffer = await new Response(stream).arrayBuffer();
    let values;
    if (entry.dtype === "float16") {
      const bits = new Uint16Array(buffer), table = halves();
      values = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) values[i] = table[bits[i]];
    } else {
      values = new Float32Array(buffer);
    }
    const [c, h, w] = entry.shape;
    if (values.length !== c * h * w) throw new Error(`the map of ${entry.layer} has ${values.length} values, not ${c} x ${h} x ${w}`);
    return { layer: String(entry.layer), shape: [c, h, w], values };
  }

  /* ---------- receptive-field geometry (convscope.network.geometry.ReceptiveField.box) ---------- */

  function boxOf(f, row, col) {
    const top = f.offset[0] + row * f.stride[0], left = f.offset[1] + col * f.stride[1];
    let bottom = top + f.size[0], right = left + f.size[1];
    const end = Array.isArray(f.end) ? f.end : [null, null];
    if (end[0] !== null && end[0] !== undefined) bottom = Math.max(top, Math.min(bottom, end[0]));
    if (end[1] !== null && end[1] !== undefined) right = Math.max(left, Math.min(right, end[1]));
    return [top, left, bottom, right];
  }

  const isField = (f) => f && Array.isArray(f.units) && Array.isArray(f.size) && Array.isArray(f.stride) && Array.isArray(f.offset);

  function fieldOf(runs, unit) {
    return runs.find((r) => unit >= r.units[0] && unit < r.units[1]) || null;
  }

  /* The units whose fields cover region [top, left, bottom, right), strongest there first (ties: lower
     unit first), each at its strongest covering position (the first in row-major order):
     convscope.explain.region.region_units. */
  function regionUnits(map, runs, region, top) {
    const [, rows, cols] = map.shape, v = map.values;
    const found = [];
    for (const run of runs) {
      const okRows = [], okCols = [];
      for (let r = 0; r < rows; r++) { const b = boxOf(run, r, 0); if (b[0] <= region[0] && b[2] >= region[2]) okRows.push(r); }
      for (let c = 0; c < cols; c++) { const b = boxOf(run, 0, c); if (b[1] <= region[1] && b[3] >= region[3]) okCols.push(c); }
      if (!okRows.length || !okCols.length) continue;
      for (let unit = run.units[0]; unit < run.units[1]; unit++) {
        let best = -Infinity, at = null;
        for (const r of okRows) {
          for (const c of okCols) {
            const x = v[(unit * rows + r) * cols + c];
            if (at === null || x > best) { best = x; at = [r, c]; }
          }
        }
        found.push({ unit, activation: best, row: at[0], col: at[1], box: boxOf(run, at[0], at[1]) });
      }
    }
    found.sort((a, b) => b.activation - a.activation || a.unit - b.unit);
    return top === undefined ? found : found.slice(0, top);
  }

  /* numpy's rint: halves to even. */
  function rint(x) {
    const f = Math.floor(x), d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return f % 2 === 0 ? f : f + 1;
  }

  /* For each input pixel along an axis, the map position whose box centre is nearest
     (convscope.explain.figure.positions). */
  function positions(length, count, f, axis) {
    const out = new Int32Array(length);
    for (let p = 0; p < length; p++) {
      let i;
      if (!f) i = Math.floor(((p + 0.5) * count) / length);
      else if (f.stride[axis] === 0) i = 0;
      else i = rint((p + 0.5 - f.offset[axis] - f.size[axis] / 2) / f.stride[axis]);
      out[p] = Math.min(count - 1, Math.max(0, i));
    }
    return out;
  }

  window.convscopeExplanations = function (api, folders) {
    const { el, fmt, isNum, isObject, folderUrl: inFolder, routeHash, setMain, layerNamed } = api;
    const list = (x) => (Array.isArray(x) ? x : []);
    const maps = new Map();   // folder -> Promise<Map(layer -> decoded map)>
    let arrived = null;       // the payload of the activations.js that just ran

    /* One entry per explanation: a folder's first at #/explain/<name>, any further at <name>/<i>. */
    const entries = [];
    for (const f of folders) {
      if (f.kind !== "explanation") continue;
      const name = f.folder.slice(f.folder.indexOf("/") + 1);
      list(f.record.explanations).forEach((e, i) => {
        if (isObject(e)) entries.push({ key: i ? `${name}/${i}` : name, folder: f.folder, name, record: f.record, e });
      });
    }
    const hash = (entry) => "#/explain/" + entry.key.split("/").map(encodeURIComponent).join("/");
    const folderUrl = (entry, path) => inFolder(entry.folder, path);
    const className = (e) => (e.class_name === null || e.class_name === undefined ? `class ${e.target}` : String(e.class_name));
    const signed = (share) => (isNum(share) ? `${share >= 0 ? "+" : "−"}${Math.abs(100 * share).toFixed(1)}%` : "—");
    const prob = (p) => (isNum(p) ? (p >= 0.001 ? `${(100 * p).toFixed(1)}%` : "<0.1%") : "—");
    const inputSize = (e) => (Array.isArray(e.input_size) && e.input_size.length === 2 ? e.input_size : [224, 224]);

    function thumbnail(entry, side) {
      const url = typeof entry.e.image_file === "string" ? folderUrl(entry, entry.e.image_file) : null;
      if (!url) return el("span", { class: "explain-thumb missing", text: "no image" });
      const img = el("img", { class: "explain-thumb", src: url, width: side, height: side, alt: `explained image ${entry.name}`, decoding: "async" });
      img.onerror = () => img.classList.add("broken");
      return img;
    }

    /* ---------- the maps, loaded on demand ---------- */

    function loadMaps(entry) {
      if (maps.has(entry.folder)) return maps.get(entry.folder);
      const file = typeof entry.e.activations_file === "string" ? folderUrl(entry, entry.e.activations_file) : null;
      const promise = new Promise((resolve, reject) => {
        if (!file) { reject(new Error("this explanation keeps no activation maps")); return; }
        const script = el("script", { src: file });
        script.onload = () => {
          const payload = arrived;
          arrived = null;
          if (!isObject(payload) || !Array.isArray(payload.layers)) { reject(new Error(`${file} holds no maps`)); return; }
          Promise.all(payload.layers.filter(isObject).map(decodeMap)).then((decoded) => resolve(new Map(decoded.map((m) => [m.layer, m]))), reject);
        };
        script.onerror = () => reject(new Error(`cannot load ${file}`));
        document.head.append(script);
      });
      promise.catch(() => maps.delete(entry.folder));
      maps.set(entry.folder, promise);
      return promise;
    }

    /* The fields of a layer: the record's, else the manifest's. */
    function runsOf(layer) {
      const own = list(layer.receptive_fields).filter(isField);
      if (own.length) return own;
      const known = layerNamed(String(layer.layer));
      return known ? list(known.receptive_fields).filter(isField) : [];
    }

    /* ---------- the explanation page ---------- */

    function render(key) {
      const entry = entries.find((x) => x.key === key);
      if (!entry) return false;
      const e = entry.e;
      const [rows, cols] = inputSize(e);
      const layers = list(e.layers).filter(isObject);

      // The image and what is drawn over it.
      const imageUrl = typeof e.image_file === "string" ? folderUrl(entry, e.image_file) : null;
      const image = imageUrl ? el("img", { class: "explain-image", src: imageUrl, alt: `the explained image, ${cols}×${rows}`, draggable: false }) : el("div", { class: "explain-image missing", text: "no image stored" });
      const heat = el("img", { class: "explain-heat", alt: "", draggable: false, hidden: true });
      const act = el("canvas", { class: "explain-act", width: cols, height: rows, hidden: true });
      const peak = el("div", { class: "explain-box", hidden: true });
      const selection = el("div", { class: "explain-selection", hidden: true });
      const stage = el("div", { class: "explain-stage", role: "img", "aria-label": "the image: hover a unit to see its heatmap, click or drag to list the units there" },
        image, heat, act, peak, selection);
      stage.style.width = `${STAGE}px`;
      if (2 * cols <= STAGE) stage.classList.add("pixelated");   // a small input: show its pixels
      stage.style.height = `${(STAGE * rows) / cols}px`;
      const caption = el("p", { class: "note small explain-caption", text: "Hover a unit for its conditional heatmap (red: pixels that raise the class through it, blue: lower) and its peak's box; click or drag on the image for the units there." });

      const place = (node, box) => {
        const [top, left, bottom, right] = box;
        const t = Math.max(0, top), l = Math.max(0, left), b = Math.min(rows, bottom), r = Math.min(cols, right);
        node.style.top = `${(100 * t) / rows}%`;
        node.style.left = `${(100 * l) / cols}%`;
        node.style.height = `${(100 * Math.max(0, b - t)) / rows}%`;
        node.style.width = `${(100 * Math.max(0, r - l)) / cols}%`;
        node.dataset.box = box.join(",");
        node.hidden = false;
      };

      let mode = "heatmap";
      let shown = null;   // {layer, unit, box, heatmap_file}
      const modeButtons = ["heatmap", "activation"].map((m) => {
        const button = el("button", { type: "button", class: `mode${m === mode ? " current" : ""}`, "data-mode": m, text: m === "heatmap" ? "heatmap" : "activation map" });
        button.onclick = () => {
          mode = m;
          for (const b of modeButtons) b.classList.toggle("current", b === button);
          if (shown) show(shown);
        };
        return button;
      });

      async function drawActivation(layerName, unit) {
        const decoded = await loadMaps(entry);
        const map = decoded.get(layerName);
        if (!map || unit >= map.shape[0]) return false;
        const layer = layers.find((l) => String(l.layer) === layerName);
        const f = layer ? fieldOf(runsOf(layer), unit) : null;
        const [, h, w] = map.shape, base = unit * h * w;
        const rowAt = positions(rows, h, f, 0), colAt = positions(cols, w, f, 1);
        let top = 0;
        for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) top = Math.max(top, map.values[base + rowAt[y] * w + colAt[x]]);
        const ctx = act.getContext("2d"), pixels = ctx.createImageData(cols, rows);
        for (let y = 0; y < rows; y++) {
          for (let x = 0; x < cols; x++) {
            const value = map.values[base + rowAt[y] * w + colAt[x]], i = 4 * (y * cols + x);
            pixels.data[i] = ACT_COLOUR[0]; pixels.data[i + 1] = ACT_COLOUR[1]; pixels.data[i + 2] = ACT_COLOUR[2];
            pixels.data[i + 3] = top > 0 ? Math.round((255 * Math.max(0, value)) / top) : 0;
          }
        }
        ctx.putImageData(pixels, 0, 0);
        act.dataset.layer = layerName;
        act.dataset.unit = String(unit);
        return true;
      }

      function show(what) {
        shown = what;
        stage.classList.add("dim");
        stage.dataset.layer = what.layer;
        stage.dataset.unit = String(what.unit);
        if (Array.isArray(what.box) && what.box.length === 4) place(peak, what.box);
        else peak.hidden = true;
        const heatUrl = typeof what.heatmap_file === "string" ? folderUrl(entry, what.heatmap_file) : null;
        if (mode === "heatmap" && heatUrl) {
          act.hidden = true;
          heat.src = heatUrl;
          heat.hidden = false;
        } else {
          heat.hidden = true;
          heat.removeAttribute("src");
          drawActivation(what.layer, what.unit).then((ok) => {
            if (shown === what) act.hidden = !ok;
          }, () => { act.hidden = true; });
        }
      }

      function hide(what) {
        if (shown !== what) return;
        shown = null;
        stage.classList.remove("dim");
        delete stage.dataset.layer;
        delete stage.dataset.unit;
        heat.hidden = true;
        heat.removeAttribute("src");
        act.hidden = true;
        peak.hidden = true;
      }

      const hover = (node, what) => {
        node.addEventListener("mouseenter", () => show(what));
        node.addEventListener("mouseleave", () => hide(what));
        node.addEventListener("focusin", () => show(what));
        node.addEventListener("focusout", () => hide(what));
        return node;
      };

      const unitLink = (layerName, unit) => {
        const known = layerNamed(layerName);
        const text = `#${unit}`;
        return known && Number.isInteger(unit) && unit >= 0 && unit < known.units
          ? el("a", { class: "unit-link", href: routeHash(layerName, unit), text }) : el("span", { class: "unit-link", text });
      };

      // Per layer its top units with signed relevance bars, and the units that fire most.
      /* A bar is |share| over the largest |share| listed in its layer (that one fills half the track). */
      function unitRow(layer, u, widest) {
        const name = String(layer.layer);
        const bar = el("span", { class: `share-bar ${u.share < 0 ? "negative" : "positive"}` });
        bar.style.width = `${widest > 0 ? Math.min(50, (50 * Math.abs(isNum(u.share) ? u.share : 0)) / widest) : 0}%`;
        const row = el("div", { class: "explain-unit", "data-layer": name, "data-unit": String(u.unit), "data-share": String(u.share), tabIndex: 0 },
          unitLink(name, u.unit),
          el("span", { class: "share-track", "aria-hidden": "true" }, bar),
          el("span", { class: "share", text: signed(u.share) }),
          el("span", { class: "relevance note", text: `R ${fmt(u.relevance)} · max ${fmt(u.max_activation)}` }));
        return hover(row, { layer: name, unit: u.unit, box: u.box, heatmap_file: u.heatmap_file });
      }

      function firingLine(layer) {
        const firing = list(layer.firing).filter(isObject);
        if (!firing.length) return null;
        const name = String(layer.layer);
        const items = firing.map((f) => hover(el("span", { class: "firing-unit", "data-unit": String(f.unit), tabIndex: 0 }, unitLink(name, f.unit), ` ${fmt(f.activation)}`),
          { layer: name, unit: f.unit, box: f.box }));
        const parts = [];
        items.forEach((item, i) => { if (i) parts.push(", "); parts.push(item); });
        return el("p", { class: "firing note" }, "fire most on this image: ", ...parts);
      }

      const layerSections = layers.map((layer) => {
        const name = String(layer.layer);
        const units = list(layer.units).filter(isObject);
        const widest = Math.max(0, ...units.map((u) => (isNum(u.share) ? Math.abs(u.share) : 0)));
        const known = layerNamed(name);
        return el("section", { class: "explain-layer", "data-layer": name },
          el("h2", null, known ? el("a", { href: routeHash(name), text: name }) : el("span", { text: name }),
            el("span", { class: "note small-inline", text: ` · relevance total ${fmt(layer.total_relevance)}, sum |R| ${fmt(layer.total_abs_relevance)}` })),
          units.length ? el("div", { class: "explain-units" }, ...units.map((u) => unitRow(layer, u, widest))) : el("p", { class: "note", text: "No unit of this layer changes the class logit." }),
          firingLine(layer));
      });

      // A click or a drag on the image: the units whose fields cover that region, per layer.
      const regionPanel = el("section", { class: "explain-region", hidden: true });
      async function lookUp(region) {
        place(selection, region);
        regionPanel.hidden = false;
        regionPanel.replaceChildren(el("h2", { text: region[2] - region[0] === 1 && region[3] - region[1] === 1 ? `Units whose fields cover row ${region[0]}, col ${region[1]}` : `Units whose fields cover rows ${region[0]}–${region[2] - 1}, cols ${region[1]}–${region[3] - 1}` }),
          el("p", { class: "note", text: "loading the activation maps…" }));
        regionPanel.dataset.region = region.join(",");
        delete regionPanel.dataset.done;
        let decoded;
        try {
          decoded = await loadMaps(entry);
        } catch (error) {
          regionPanel.replaceChildren(el("p", { class: "note error", text: error.message }));
          return;
        }
        if (regionPanel.dataset.region !== region.join(",")) return;   // another selection since
        const blocks = [];
        for (const layer of layers) {
          const name = String(layer.layer), map = decoded.get(name), runs = runsOf(layer);
          if (!map) continue;
          const found = runs.length ? regionUnits(map, runs, region, REGION_TOP) : [];
          const items = found.map((r) => hover(el("li", { class: "region-unit", "data-layer": name, "data-unit": String(r.unit), "data-activation": String(r.activation),
            "data-row": String(r.row), "data-col": String(r.col), tabIndex: 0 }, unitLink(name, r.unit), el("span", { class: "note", text: ` ${fmt(r.activation)} at row ${r.row}, col ${r.col}` })),
          { layer: name, unit: r.unit, box: r.box }));
          blocks.push(el("div", { class: "region-layer", "data-layer": name },
            el("h3", { text: name }),
            items.length ? el("ol", { class: "region-units" }, ...items) : el("p", { class: "note", text: runs.length ? "no unit's field covers all of it" : "this layer's fields are unknown" })));
        }
        regionPanel.replaceChildren(regionPanel.firstChild, el("p", { class: "note small", text: `Strongest activation at a position whose box contains the whole selection; top ${REGION_TOP} per layer.` }), ...blocks);
        regionPanel.dataset.done = "1";
      }

      const pixelAt = (event) => {
        const rect = stage.getBoundingClientRect();
        const row = Math.floor(((event.clientY - rect.top) / rect.height) * rows), col = Math.floor(((event.clientX - rect.left) / rect.width) * cols);
        return [Math.min(rows - 1, Math.max(0, row)), Math.min(cols - 1, Math.max(0, col))];
      };
      let start = null;
      const spanOf = (a, b) => [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]) + 1, Math.max(a[1], b[1]) + 1];
      stage.addEventListener("mousedown", (event) => { if (event.button === 0) { start = pixelAt(event); event.preventDefault(); } });
      stage.addEventListener("mousemove", (event) => { if (start) place(selection, spanOf(start, pixelAt(event))); });
      stage.addEventListener("mouseup", (event) => {
        if (!start) return;
        const region = spanOf(start, pixelAt(event));
        start = null;
        lookUp(region);
      });

      const classes = list(e.top_classes).filter(isObject);
      const probTable = classes.length ? el("table", { class: "explain-classes" }, el("tbody", null, ...classes.map((c) => {
        const bar = el("span", { class: "bar" });
        bar.style.width = `${100 * Math.max(0, Math.min(1, isNum(c.probability) ? c.probability : 0))}%`;
        const name = c.name === null || c.name === undefined ? `class ${c.class}` : String(c.name);
        return el("tr", { class: c.class === e.target ? "target" : null, "data-class": String(c.class) },
          el("td", { class: "class-name", text: name, title: `class ${c.class}` }), el("td", { class: "prob-bar" }, el("span", { class: "hist-bar" }, bar)),
          el("td", { class: "num", text: prob(c.probability) }));
      }))) : null;

      const predicted = e.predicted !== e.target ? el("p", { class: "note", text: `The network predicts class ${e.predicted}; this explains class ${e.target}.` }) : null;
      setMain("explanation",
        el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ", el("span", { text: "explain" }), " / ", el("span", { text: entry.key })),
        el("div", { class: "explain-head" },
          el("h1", null, el("span", { class: "explain-class", text: className(e) }), el("span", { class: "explain-prob", text: ` p = ${prob(e.probability)}` })),
          el("span", { class: "note explain-facts", text: `class ${e.target} · logit ${fmt(e.logit)} · ${e.method || entry.record.method || ""} · ${e.image}` })),
        el("div", { class: "explain-layout" },
          el("div", { class: "explain-side" }, stage, el("div", { class: "explain-modes" }, "hover shows: ", ...modeButtons), caption, predicted,
            probTable ? el("h2", { text: "Class probabilities" }) : null, probTable),
          el("div", { class: "explain-main" },
            regionPanel,
            el("p", { class: "note", text: "Per layer, the units most relevant to the class logit: gradient × activation summed over positions, as a signed share of the layer's sum of |relevance| (bars scaled to the layer's largest)." }),
            ...layerSections)));
      const region = e.region;
      if (Array.isArray(region) && region.length === 4 && region.every(Number.isInteger)) lookUp(region);
      for (const link of document.querySelectorAll(".explain-link")) link.classList.toggle("current", link.getAttribute("data-key") === key);
      return true;
    }

    /* ---------- what viewer.js asks for ---------- */

    return {
      /* The payload of an activations.js that has just run (read by its script's onload). */
      arrive(payload) { arrived = payload; },
      homeSection() {
        if (!entries.length) return [];
        return [el("h2", { text: "Explained images" }), el("ul", { class: "explanation-list" }, ...entries.map((entry) => el("li", { "data-key": entry.key },
          el("a", { href: hash(entry) }, thumbnail(entry, 64),
            el("span", { class: "explain-item" }, el("span", { class: "explain-class", text: className(entry.e) }),
              el("span", { class: "note", text: ` p = ${prob(entry.e.probability)}` }), el("span", { class: "note explain-name", text: entry.key }))))))];
      },
      navLinks() {
        if (!entries.length) return [];
        return [el("div", { class: "nav-heading", text: "Explained images" }), ...entries.map((entry) => el("a", { class: "layer-link explain-link", href: hash(entry), "data-key": entry.key },
          el("span", { class: "layer-name", text: entry.key }), el("span", { class: "layer-meta", text: className(entry.e) })))];
      },
      render,
      /* The explained images where this unit was among its layer's top units. */
      unitSection(layerName, unitNo) {
        const rows = [];
        for (const entry of entries) {
          const layer = list(entry.e.layers).find((l) => isObject(l) && l.layer === layerName);
          const unit = layer && list(layer.units).find((u) => isObject(u) && u.unit === unitNo);
          if (!unit) continue;
          const rank = list(layer.units).indexOf(unit) + 1;
          rows.push(el("li", { class: "explained-in", "data-key": entry.key, "data-share": String(unit.share) },
            el("a", { href: hash(entry) }, thumbnail(entry, 48),
              el("span", { class: "explain-item" }, el("span", { class: "explain-class", text: className(entry.e) }),
                el("span", { class: "share", text: ` ${signed(unit.share)}` }), el("span", { class: "note", text: ` rank ${rank} · ${entry.key}` })))));
        }
        if (!rows.length) return null;
        return el("section", { class: "explained" }, el("h2", { class: "section-title", text: "In explained images" }),
          el("p", { class: "note small", text: "Images explained in this atlas where this unit is among its layer's most relevant units, with its share of the layer's relevance." }),
          el("ul", { class: "explanation-list" }, ...rows));
      },
      regionUnits,
    };
  };
})();
