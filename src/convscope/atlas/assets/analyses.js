/* convscope atlas viewer: the analyses kept inside the atlas (evolution over training, invariance).
 *
 * viewer/data/analyses.js registers each analysis folder's record as {folder, record} (see
 * convscope.atlas.viewer.find_analyses); once the manifest is in, viewer.js calls
 * window.convscopeAnalyses(api, analyses) with its drawing helpers and asks the object returned for
 * the home page's list, the side links, the routes #/<folder> and a unit's row over training.
 * Every string from the data goes into the page as text, as in viewer.js.
 */
(function () {
  "use strict";

  window.convscopeAnalyses = function (api, analyses) {
    const { el, fmt, pct, num2, isNum, isObject, atlasUrl, boxCanvas, fillColour, routeHash, setMain, layerNamed } = api;
    const TITLES = { evolution: "Over training", invariance: "Invariance" };
    const CELL = 60;        // shown side of an evolution cell, CSS pixels
    const UNIT_CELL = 96;   // the same on a unit's page

    const list = (x) => (Array.isArray(x) ? x : []);
    const find = (folder) => analyses.find((a) => a.folder === folder) || null;
    const hash = (a) => "#/" + encodeURIComponent(a.folder);

    /* A '/'-separated path inside an analysis folder as a relative URL (null if it could leave it). */
    function folderUrl(a, path) {
      const folder = atlasUrl(a.folder), inside = atlasUrl(path);
      return folder && inside ? `${folder}/${inside}` : null;
    }

    function figure(a, path, alt, caption) {
      const url = folderUrl(a, path);
      if (!url) return null;
      const node = el("figure", { class: "analysis-figure" }, el("img", { src: url, alt }), caption ? el("figcaption", { text: caption }) : null);
      node.querySelector("img").onerror = () => node.remove();
      return node;
    }

    function crumbs(a) {
      return el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ", el("span", { text: `${a.folder}/` }));
    }

    function summary(a) {
      const r = a.record;
      if (a.kind === "evolution") {
        return `${list(r.checkpoints).length} checkpoints, ${list(r.layers).length} layers`;
      }
      return `${list(r.images).length} images, layers ${r.first_layer} and ${r.late_layer}`;
    }

    /* ---------- evolution (Zeiler & Fergus's Figure 4) ---------- */

    const checkpointNames = (r) => list(r.checkpoints).map((c, i) => (isObject(c) && c.name !== undefined ? String(c.name) : `checkpoint ${i + 1}`));
    const isBox = (box) => Array.isArray(box) && box.length === 4 && box.every(Number.isInteger);
    const drawable = (cell) => isObject(cell) && typeof cell.image_file === "string" && isBox(cell.box);

    /* Version 3 records with a projection keep each cell's projection. */
    const projected = (r) => list(r.layers).some((layer) => isObject(layer) && list(layer.units).some((u) => isObject(u) && list(u.checkpoints).some((c) => isObject(c) && typeof c.projection_file === "string")));

    /* Version 2 records carry the stored images the cells are cut from; version 1 only its figures. */
    const hasImages = (r) => list(r.layers).some((layer) => isObject(layer) && list(layer.units).some((u) => isObject(u) && list(u.checkpoints).some(drawable)));

    function fill(r) {
      return Array.isArray(r.fill) && r.fill.length === 3 && r.fill.every(isNum) ? `rgb(${r.fill.map(Math.round).join(", ")})` : fillColour();
    }

    /* One unit at one checkpoint: its strongest hit's patch, framed where the image changed, and
       under it the hit's projection where the record keeps one (version 3 with a projection). */
    function evolutionCell(a, unit, cell, name, side) {
      if (!drawable(cell)) return el("td", { class: "evo-cell empty", title: `${name}: no hit`, text: "—" });
      const changed = cell.changed === true;
      const title = `${name}: activation ${fmt(cell.activation)}${changed ? " (a new top image)" : ""}\n${cell.image}\nrow ${cell.row}, col ${cell.col}`;
      const canvas = boxCanvas(cell, folderUrl(a, cell.image_file), typeof unit.padding === "string" ? unit.padding : "zeros", fill(a.record), side);
      canvas.classList.add("evo-patch");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", title);
      const src = typeof cell.projection_file === "string" ? folderUrl(a, cell.projection_file) : null;
      const projection = src ? el("img", { class: "evo-projection", src, width: side, height: side, alt: `${name}: ${String(a.record.projection)} projection`, decoding: "async" }) : null;
      return el("td", { class: `evo-cell${changed ? " changed" : ""}`, title, "data-activation": String(cell.activation) }, canvas, projection);
    }

    function unitHead(layerName, unit) {
      const layer = layerNamed(layerName);
      const text = `#${unit.unit}`;
      const known = layer && Number.isInteger(unit.unit) && unit.unit >= 0 && unit.unit < layer.units;
      return el("th", { class: "evo-unit", scope: "row" }, known ? el("a", { href: routeHash(layerName, unit.unit), text }) : el("span", { text }));
    }

    /* A layer's units down and checkpoints across. */
    function evolutionTable(a, layer, names) {
      const head = el("tr", null, el("th", { text: "unit" }), ...names.map((name) => el("th", { class: "evo-name", text: name })));
      const rows = list(layer.units).filter(isObject).map((unit) => el("tr", { "data-unit": String(unit.unit) },
        unitHead(String(layer.layer), unit),
        ...names.map((name, c) => evolutionCell(a, unit, list(unit.checkpoints)[c], name, CELL))));
      return el("table", { class: "evo-grid" }, el("thead", null, head), el("tbody", null, ...rows));
    }

    function layerSection(a, layer, names, images) {
      const name = String(layer.layer);
      const known = layerNamed(name);
      return el("section", { class: "evo-layer", "data-layer": name },
        el("h2", null, known ? el("a", { href: routeHash(name), text: name }) : el("span", { text: name })),
        images ? evolutionTable(a, layer, names) : figure(a, `evolution-${name}.png`, `${name} over training`));
    }

    /* Top-k overlap of every layer: with the checkpoint before, and with the final checkpoint. */
    function settleTable(r, names) {
      const value = (s) => {
        if (!isObject(s)) return el("td", { class: "num", text: "—" });
        return el("td", { class: "num", text: num2(s.topk_overlap), title: `top-1 kept: ${pct(s.top1_same)}; ${isNum(s.units) ? s.units : "?"} units measured` });
      };
      const rows = [];
      for (const layer of list(r.layers).filter(isObject)) {
        const settle = list(layer.settle), final = list(layer.to_final);
        rows.push(
          el("tr", { "data-layer": String(layer.layer), "data-measure": "previous" },
            el("th", { scope: "row", rowSpan: 2, text: String(layer.layer) }), el("td", { class: "measure", text: "the checkpoint before" }),
            ...names.map((_, c) => (c === 0 ? el("td", { class: "num", text: "—" }) : value(settle[c - 1])))),
          el("tr", { "data-layer": String(layer.layer), "data-measure": "final" },
            el("td", { class: "measure", text: "the final checkpoint" }), ...names.map((_, c) => value(final[c]))));
      }
      return el("table", { class: "layer-table settle-table" },
        el("thead", null, el("tr", null, el("th", { text: "layer" }), el("th", { text: "top-k overlap with" }), ...names.map((n) => el("th", { class: "num", text: n })))),
        el("tbody", null, ...rows));
    }

    function renderEvolution(a) {
      const r = a.record, names = checkpointNames(r), images = hasImages(r);
      const model = isObject(r.model) && r.model.source ? ` of ${r.model.source}` : "";
      const intro = images
        ? `Each unit's strongest hit at every checkpoint${model}: units down, checkpoints across${projected(r) ? `, the hit's ${r.projection} projection under its patch` : ""}; a red frame marks a new top image since the checkpoint before. Hover a cell for its activation and image.`
        : `Each unit's strongest hit at every checkpoint${model} (this record, version ${r.version}, keeps no images: its figures are shown).`;
      setMain("evolution",
        crumbs(a),
        el("h1", { text: `${TITLES.evolution}: ${a.folder}/` }),
        el("p", { class: "note", text: `${intro} ${names.length} checkpoints, top-${r.k} hits per unit.` }),
        el("div", { class: "evo-layers" }, ...list(r.layers).filter(isObject).map((layer) => layerSection(a, layer, names, images))),
        el("h2", { text: "How settled each layer is" }),
        figure(a, "settle.png", "settle curves"),
        settleTable(r, names),
        el("p", { class: "note table-note", text: "Mean Jaccard overlap of the units' top-k image sets (units whose top-k is all ties left out); hover a number for the share of units whose top-1 image stayed." }));
    }

    /* The unit's row over training, from every evolution that follows it. */
    function unitSection(layerName, unitNo) {
      const parts = [];
      for (const a of analyses.filter((x) => x.kind === "evolution")) {
        const layer = list(a.record.layers).find((l) => isObject(l) && l.layer === layerName);
        const unit = layer && list(layer.units).find((u) => isObject(u) && u.unit === unitNo);
        if (!unit) continue;
        const names = checkpointNames(a.record);
        const link = el("a", { href: hash(a), text: `all units over training (${a.folder}/) →` });
        const body = hasImages(a.record)
          ? el("table", { class: "evo-grid evo-row" },
            el("thead", null, el("tr", null, ...names.map((name) => el("th", { class: "evo-name", text: name })))),
            el("tbody", null, el("tr", { "data-unit": String(unitNo) }, ...names.map((name, c) => evolutionCell(a, unit, list(unit.checkpoints)[c], name, UNIT_CELL)))))
          : el("p", { class: "note", text: "This evolution record keeps no images; its figure shows this unit." });
        parts.push(el("section", { class: "over-training", "data-folder": a.folder },
          el("h2", { class: "section-title", text: "Over training" }), body, el("p", { class: "note small" }, link)));
      }
      return parts.length ? el("div", null, ...parts) : null;
    }

    /* ---------- invariance (Zeiler & Fergus's Figure 5) ---------- */

    const mean = (values) => {
      const xs = list(values).filter(isNum);
      return xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : null;
    };

    /* Per image its class and shift consistency, and per sweep the mean first / late distance / P(class). */
    function invarianceTable(r) {
      const images = list(r.images).filter(isObject);
      const kinds = [...new Set(images.flatMap((image) => list(image.curves).filter(isObject).map((c) => String(c.kind))))];
      const curve = (image, kind) => list(image.curves).find((c) => isObject(c) && String(c.kind) === kind);
      const triple = (curves) => {
        const part = (key) => mean(curves.map((c) => mean(c[key])));
        const p = part("probability");
        return `${num2(part("first"))} / ${num2(part("late"))} / ${p === null ? "—" : num2(p)}`;
      };
      const row = (name, label, consistency, curvesOf) => el("tr", null,
        el("td", { class: "invariance-image", text: name }), el("td", { text: label }), el("td", { class: "num", text: num2(consistency) }),
        ...kinds.map((kind) => el("td", { class: "num", text: triple(curvesOf(kind)) })));
      const rows = images.map((image) => row(String(image.image), image.label === null || image.label === undefined ? "—" : String(image.label),
        image.shift_consistency, (kind) => [curve(image, kind)].filter(Boolean)));
      rows.push(row("mean", "", r.mean_shift_consistency, (kind) => images.map((image) => curve(image, kind)).filter(Boolean)));
      rows[rows.length - 1].classList.add("mean-row");
      return el("table", { class: "layer-table invariance-table" },
        el("thead", null, el("tr", null, el("th", { text: "image" }), el("th", { text: "class" }), el("th", { class: "num", text: "shift consistency" }),
          ...kinds.map((kind) => el("th", { class: "num sweep" }, el("span", { text: kind }), el("span", { class: "small", text: "first / late / P(class)" }))))),
        el("tbody", null, ...rows));
    }

    function renderInvariance(a) {
      const r = a.record;
      const unit = isObject(r.unit) ? ` · unit ${r.unit.layer}:${r.unit.unit}` : "";
      setMain("invariance",
        crumbs(a),
        el("h1", { text: `${TITLES.invariance}: ${a.folder}/` }),
        el("p", { class: "note", text: `First layer ${r.first_layer}, late layer ${r.late_layer} (pooled) · translation up to ${r.max_shift_px} px${unit}${r.model ? ` · ${r.model}` : ""}` }),
        figure(a, "invariance.png", "invariance curves"),
        invarianceTable(r),
        el("p", { class: "note table-note", text: `Means over each sweep's values of the relative distance at the first and the late layer (${r.distance || "||f(T x) - f(x)|| / ||f(x)||"}) and of the true class's probability (— where the label is unknown). Shift consistency: how often two random shifts keep the top-1 class.` }));
    }

    /* ---------- what viewer.js asks for ---------- */

    return {
      homeSection() {
        if (!analyses.length) return [];
        return [el("h2", { text: "Analyses" }), el("ul", { class: "analysis-list" }, ...analyses.map((a) => el("li", { "data-kind": a.kind },
          el("a", { href: hash(a), text: `${TITLES[a.kind]}: ${a.folder}/` }), el("span", { class: "note", text: ` ${summary(a)}` }))))];
      },
      navLinks() {
        if (!analyses.length) return [];
        return [el("div", { class: "nav-heading", text: "Analyses" }), ...analyses.map((a) => el("a", { class: "layer-link analysis-link", href: hash(a), "data-folder": a.folder },
          el("span", { class: "layer-name", text: TITLES[a.kind] }), el("span", { class: "layer-meta", text: `${a.folder}/` })))];
      },
      render(folder) {
        const a = find(folder);
        if (!a) return false;
        if (a.kind === "evolution") renderEvolution(a);
        else renderInvariance(a);
        for (const link of document.querySelectorAll(".analysis-link")) link.classList.toggle("current", link.getAttribute("data-folder") === folder);
        return true;
      },
      unitSection,
    };
  };
})();
