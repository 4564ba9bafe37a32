/* convscope atlas viewer: circuits (convscope circuits): what each unit is built from, what it feeds,
 * and which classes it matters for.
 *
 * viewer/data/analyses.js registers ATLAS/circuits/circuits.json as
 * convscopeRegister("circuits", i, {folder: "circuits", record}). The record lists the pairs of
 * layers ({layer, below, method, direct, units, below_units, script}) and the ablated layers
 * (record.ablation.layers: {layer, units, script, bau}); their data scripts, loaded when shown:
 *   circuits/viewer/inputs-<i>.js    convscopeRegister("circuits-inputs", i, {layer, below, direct,
 *       fields: ["unit", "share", "contribution"], units: {"<u>": {pos: [[c, share, contribution], ...],
 *       neg: [...], kernels: {"<c>": [[...], ...]} (direct pairs only)}}})
 *   circuits/viewer/ablation-<j>.js  convscopeRegister("circuits-ablation", j, {layer,
 *       fields: ["class", "drop", "accuracy_change"], units: {"<u>": [[k, drop, dacc], ...]},
 *       classes: {...}, class_names: [...] | null})
 * A unit's card gets "Built from" (its pair's top inputs, with kernels for a direct pair),
 * "Feeds" (the pair whose lower layer is this one, inverted here) and "Matters for" (its
 * ablation); #/circuit/<layer>/<unit> draws the unit and its inputs two layers down as a graph;
 * #/circuits lists the pairs and the ablated layers; #/circuits/ablation/<layer>[/<class>] lists the
 * ablated layer's classes (a search box, as classes.js's class page) and, for the chosen class,
 * the units whose removal lowers its logit most. Every string from the data goes into the page as
 * text, as in viewer.js.
 */
(function () {
  "use strict";

  const THUMB = 56;          // an input's patch on a unit's card, CSS pixels
  const CLASS_THUMB = 96;    // a unit's patch on an ablated class's page
  const GRAPH_THUMB = 72;    // a unit's patch on the circuit page
  const GRAPH_POS = 4, GRAPH_NEG = 2, GRAPH_NEXT = 3;   // inputs drawn per unit on the circuit page
  const FEEDS_SHOWN = 12;    // upper units listed per sign under "Feeds"
  const RED = [217, 59, 59], BLUE = [59, 98, 217];       // the share bars' colours (viewer.css)
  const SVG = "http://www.w3.org/2000/svg";

  window.convscopeCircuits = function (api, folders) {
    const { el, fmt, pct, isNum, isObject, dataScripts, routeHash, setMain, layerNamed, unitThumb } = api;
    const list = (x) => (Array.isArray(x) ? x : []);
    const scripts = dataScripts((payload) => isObject(payload) && isObject(payload.units), "rerun convscope circuits to write the viewer's data");

    const sets = folders.filter((f) => f.kind === "circuits").map((f) => {
      const record = f.record;
      const ablation = isObject(record.ablation) ? record.ablation : null;
      return {
        folder: f.folder, record, ablation,
        pairs: list(record.pairs).filter((p) => isObject(p) && typeof p.layer === "string" && typeof p.below === "string"),
        ablated: ablation ? list(ablation.layers).filter((a) => isObject(a) && typeof a.layer === "string") : [],
      };
    });
    const pairs = sets.flatMap((set) => set.pairs.map((pair) => ({ set, pair })));
    const ablated = sets.flatMap((set) => set.ablated.map((entry) => ({ set, entry })));
    const pairOf = (layer) => pairs.find((p) => p.pair.layer === layer) || null;

    const signed = (share) => (isNum(share) ? `${share >= 0 ? "+" : "−"}${Math.abs(100 * share).toFixed(1)}%` : "—");
    const points = (d) => (isNum(d) ? `${d > 0 ? "+" : d < 0 ? "−" : "±"}${Math.abs(100 * d).toFixed(1)} pts` : "—");
    const count = (n, word, words) => `${isNum(n) ? n.toLocaleString("en-US") : "?"} ${n === 1 ? word : (words || word + "s")}`;
    const METHODS = { crop: "as crops of the lower map", expand: "with the whole lower map", full: "as whole images" };
    const circuitHash = (layer, unit) => `#/circuit/${encodeURIComponent(layer)}/${unit}`;
    /* The class view of an ablated layer: its class list, or (k given) the units class k needs. */
    const ablationHash = (set, layer, k) => `#/${set.folder.split("/").map(encodeURIComponent).join("/")}/ablation/${encodeURIComponent(layer)}${Number.isInteger(k) ? `/${k}` : ""}`;
    const knownUnit = (layer, unit) => {
      const known = layerNamed(layer);
      return Boolean(known) && Number.isInteger(unit) && unit >= 0 && unit < known.units;
    };

    /* ---------- data scripts ---------- */

    /* The payload of a data script inside the set's folder, loaded once. */
    const load = (set, path) => scripts.load(set.folder, path);

    /* Rows of a payload's list as objects, by its "fields" ([unit, share, contribution] if absent). */
    function rowsOf(payload, rows, names) {
      const fields = Array.isArray(payload.fields) ? payload.fields : names;
      const at = names.map((name, i) => (fields.indexOf(name) >= 0 ? fields.indexOf(name) : i));
      return list(rows).filter((row) => Array.isArray(row) && at.every((i) => isNum(row[i])) && Number.isInteger(row[at[0]]))
        .map((row) => Object.fromEntries(names.map((name, i) => [name, row[at[i]]])));
    }

    const INPUT_FIELDS = ["unit", "share", "contribution"];
    /* A unit's inputs in a pair's payload: {pos, neg, kernels}. */
    function inputsOf(payload, unit) {
      const entry = isObject(payload.units[String(unit)]) ? payload.units[String(unit)] : {};
      return { pos: rowsOf(payload, entry.pos, INPUT_FIELDS), neg: rowsOf(payload, entry.neg, INPUT_FIELDS),
               kernels: isObject(entry.kernels) ? entry.kernels : {} };
    }

    /* ---------- small pieces ---------- */

    function shareBar(share, widest) {
      const bar = el("span", { class: `share-bar ${share < 0 ? "negative" : "positive"}` });
      bar.style.width = `${widest > 0 ? Math.min(50, (50 * Math.abs(isNum(share) ? share : 0)) / widest) : 0}%`;
      return el("span", { class: "share-track", "aria-hidden": "true" }, bar);
    }

    /* A kernel (rows of numbers) as a tiny heatmap: white at 0, red positive, blue negative, full
       colour at |value| = scale; null for a kernel that is not a grid of numbers. */
    function kernelCanvas(kernel, scale) {
      const rows = list(kernel);
      if (!rows.length || !rows.every((r) => Array.isArray(r) && r.length === rows[0].length && r.every(isNum)) || !rows[0].length) return null;
      const h = rows.length, w = rows[0].length;
      const canvas = el("canvas", { class: "kernel", width: w, height: h, role: "img",
        "aria-label": `kernel ${h}×${w}, from ${fmt(Math.min(...rows.flat()))} to ${fmt(Math.max(...rows.flat()))}` });
      canvas.title = `kernel ${h}×${w}: red positive, blue negative (white 0, full colour ±${fmt(scale)})`;
      const side = Math.max(24, Math.min(48, 6 * Math.max(h, w)));
      canvas.style.width = `${(side * w) / Math.max(h, w)}px`;
      canvas.style.height = `${(side * h) / Math.max(h, w)}px`;
      const ctx = canvas.getContext("2d"), pixels = ctx.createImageData(w, h);
      rows.forEach((r, y) => r.forEach((v, x) => {
        const t = scale > 0 ? Math.min(1, Math.abs(v) / scale) : 0, colour = v < 0 ? BLUE : RED, i = 4 * (y * w + x);
        for (let k = 0; k < 3; k++) pixels.data[i + k] = Math.round(255 + t * (colour[k] - 255));
        pixels.data[i + 3] = 255;
      }));
      ctx.putImageData(pixels, 0, 0);
      canvas.dataset.drawn = "1";
      return canvas;
    }

    /* A small card of `unit` of `layer`: its top patch, number, label (once its layer's records are in),
       share bar and, where given, its kernel; a link to `href`. */
    function unitCard(layer, unit, share, widest, href, kernel, extra) {
      return card(layer, unit, share, widest, href, kernel, extra, signed(share), THUMB, "circuit-unit");
    }

    /* unitCard's card with `value` as the number's text (`share`: its bar and sign), the patch `side` wide. */
    function card(layer, unit, share, widest, href, kernel, extra, value, side, kind) {
      const label = el("span", { class: "circuit-label note" });
      const thumb = unitThumb(layer, unit, side, (name, confident) => {
        label.textContent = name;
        label.title = name;
        label.classList.toggle("weak", !confident);
      });
      const linked = href && knownUnit(layer, unit);
      return el(linked ? "a" : "div", { class: kind, href: linked ? href : null, "data-layer": layer, "data-unit": String(unit),
        "data-share": String(share), "data-sign": share < 0 ? "-" : "+" },
        el("div", { class: "circuit-unit-pictures" }, thumb, kernel),
        el("div", { class: "circuit-unit-head" }, el("span", { class: "unit-no", text: `#${unit}` }), el("span", { class: `share ${share < 0 ? "negative" : "positive"}`, text: value })),
        shareBar(share, widest),
        label,
        extra || null);
    }

    /* ---------- a unit's card ---------- */

    function builtFrom(layerName, unitNo, found) {
      const { set, pair } = found;
      const body = el("div", { class: "circuit-body" }, el("p", { class: "note", text: "loading…" }));
      const graph = el("a", { class: "circuit-link small-inline", href: circuitHash(layerName, unitNo), text: "circuit →" });
      const section = el("section", { class: "circuit-inputs", "data-layer": layerName, "data-below": pair.below },
        el("h2", { class: "section-title" }, "Built from ", el("span", { class: "layer-ref", text: pair.below }), " ", graph),
        body);
      load(set, pair.script).then((payload) => {
        const inputs = inputsOf(payload, unitNo);
        const shown = [...inputs.pos, ...inputs.neg];
        if (!shown.length) {
          body.replaceChildren(el("p", { class: "note", text: `No input from ${pair.below} (this unit has no hits, or none of its inputs contributes).` }));
        } else {
          const widest = Math.max(0, ...shown.map((r) => Math.abs(r.share)));
          const direct = payload.direct === true || pair.direct === true;
          const grids = direct ? shown.map((r) => list(inputs.kernels[String(r.unit)])) : [];
          const scale = Math.max(0, ...grids.flat(2).filter(isNum).map(Math.abs));
          const card = (r) => unitCard(pair.below, r.unit, r.share, widest, routeHash(pair.below, r.unit),
            direct ? kernelCanvas(inputs.kernels[String(r.unit)], scale) : null,
            el("span", { class: "contribution note", text: `${fmt(r.contribution)}`, title: "mean contribution (gradient × activation) at the unit's top hits" }));
          body.replaceChildren(
            el("p", { class: "note small", text: `The units of ${pair.below} that contribute most to this unit's activation at its top ${count(set.record.hits, "hit")} (fed ${METHODS[pair.method] || String(pair.method)}; gradient × activation, as a signed share of the sum of |contributions|): red excites, blue inhibits.${direct ? ` ${pair.layer} is a convolution of ${pair.below} through channel-wise operations only: each card shows the kernel from that unit (red positive, blue negative weights, one colour scale for all).` : ""}` }),
            inputs.pos.length ? el("div", { class: "circuit-row positive" }, el("span", { class: "row-title note", text: "excitatory" }), ...inputs.pos.map(card)) : null,
            inputs.neg.length ? el("div", { class: "circuit-row negative" }, el("span", { class: "row-title note", text: "inhibitory" }), ...inputs.neg.map(card)) : null);
        }
        section.dataset.done = "1";
      }, (error) => body.replaceChildren(el("p", { class: "note error", text: error.message })));
      return section;
    }

    /* The units of the pair above that list this unit among their inputs, from that pair's script. */
    function feeds(layerName, unitNo, found) {
      const { set, pair } = found;
      const body = el("div", { class: "circuit-body" }, el("p", { class: "note", text: "loading…" }));
      const section = el("section", { class: "circuit-feeds", "data-layer": pair.layer, "data-below": layerName },
        el("h2", { class: "section-title" }, "Feeds ", el("span", { class: "layer-ref", text: pair.layer })), body);
      load(set, pair.script).then((payload) => {
        const fed = { pos: [], neg: [] };
        for (const key of Object.keys(payload.units)) {
          if (!/^\d+$/.test(key)) continue;
          const inputs = inputsOf(payload, Number(key));
          for (const sign of ["pos", "neg"]) {
            const rank = inputs[sign].findIndex((r) => r.unit === unitNo);
            if (rank >= 0) fed[sign].push({ unit: Number(key), share: inputs[sign][rank].share, contribution: inputs[sign][rank].contribution, rank: rank + 1 });
          }
        }
        fed.pos.sort((a, b) => b.share - a.share || a.unit - b.unit);
        fed.neg.sort((a, b) => a.share - b.share || a.unit - b.unit);
        const all = [...fed.pos, ...fed.neg];
        if (!all.length) {
          body.replaceChildren(el("p", { class: "note", text: `Not among the top ${set.record.top} inputs of any unit of ${pair.layer}.` }));
        } else {
          const widest = Math.max(0, ...all.map((r) => Math.abs(r.share)));
          const card = (r) => unitCard(pair.layer, r.unit, r.share, widest, routeHash(pair.layer, r.unit), null,
            el("span", { class: "note rank", text: `input #${r.rank}` }));
          const row = (rows, sign, title) => {
            if (!rows.length) return null;
            const more = rows.length > FEEDS_SHOWN ? el("span", { class: "note more", text: `and ${rows.length - FEEDS_SHOWN} more` }) : null;
            return el("div", { class: `circuit-row ${sign}` }, el("span", { class: "row-title note", text: title }), ...rows.slice(0, FEEDS_SHOWN).map(card), more);
          };
          body.replaceChildren(
            el("p", { class: "note small", text: `The units of ${pair.layer} among whose top ${set.record.top} inputs of a sign this unit is (${fed.pos.length} excitatory, ${fed.neg.length} inhibitory), with its share there (its rank among that unit's inputs).` }),
            row(fed.pos, "positive", "it excites"), row(fed.neg, "negative", "it inhibits"));
        }
        section.dataset.done = "1";
      }, (error) => body.replaceChildren(el("p", { class: "note error", text: error.message })));
      return section;
    }

    const className = (set, payload, k) => {
      const names = Array.isArray(payload.class_names) ? payload.class_names : (set.ablation && Array.isArray(set.ablation.class_names) ? set.ablation.class_names : null);
      return names && Number.isInteger(k) && k >= 0 && k < names.length && names[k] !== null ? String(names[k]) : `class ${k}`;
    };

    function bauText(set, entry) {
      const bau = isObject(entry.bau) ? entry.bau : null;
      if (!bau) return "";
      return `zeroing a class's top ${isNum(bau.n) ? bau.n : "?"} units lowers its logit more than ${isNum(bau.n) ? bau.n : "?"} random units for ${pct(bau.top_beats_random)} of ${count(bau.classes, "class", "classes")} (mean drop ${fmt(bau.mean_drop_top)} vs ${fmt(bau.mean_drop_random)})`;
    }

    function mattersFor(layerName, unitNo, found) {
      const { set, entry } = found;
      const body = el("div", { class: "circuit-body" }, el("p", { class: "note", text: "loading…" }));
      const ab = set.ablation;
      const section = el("section", { class: "circuit-ablation", "data-layer": layerName },
        el("h2", { class: "section-title", text: "Matters for (ablation)" }), body);
      load(set, entry.script).then((payload) => {
        const rows = rowsOf(payload, payload.units[String(unitNo)], ["class", "drop", "accuracy_change"]);
        if (!rows.length) {
          body.replaceChildren(el("p", { class: "note", text: "Zeroing this unit changes no class's logit." }));
        } else {
          const widest = Math.max(0, ...rows.map((r) => Math.abs(r.drop)));
          body.replaceChildren(
            el("p", { class: "note small", text: `Zeroing this unit on ${count(ab.images, "image")} (each image of the class it was ${ab.class_by === "predicted" ? "predicted as" : "labelled"}): the classes whose logit drops most (mean drop over the class's images; red: the unit supports the class) and the change in their accuracy.` }),
            el("ol", { class: "ablation-list" }, ...rows.map((r) => {
              const name = className(set, payload, r.class);
              const bar = el("span", { class: `share-bar ${r.drop < 0 ? "negative" : "positive"}` });
              bar.style.width = `${widest > 0 ? (50 * Math.abs(r.drop)) / widest : 0}%`;
              return el("li", { class: "ablation-class", "data-class": String(r.class), "data-drop": String(r.drop), "data-accuracy-change": String(r.accuracy_change) },
                el("a", { class: "class-name", href: ablationHash(set, layerName, r.class), text: name, title: `class ${r.class}: the units whose removal hurts it most` }),
                el("span", { class: "share-track", "aria-hidden": "true" }, bar),
                el("span", { class: "drop", text: `drop ${fmt(r.drop)}` }),
                el("span", { class: `accuracy note${r.accuracy_change < 0 ? " worse" : ""}`, text: `accuracy ${points(r.accuracy_change)}` }));
            })),
            bauText(set, entry) ? el("p", { class: "note small", text: `Layer ${layerName}: ${bauText(set, entry)}.` }) : null);
        }
        section.dataset.done = "1";
      }, (error) => body.replaceChildren(el("p", { class: "note error", text: error.message })));
      return section;
    }

    function unitSection(layerName, unitNo) {
      const parts = [];
      const own = pairOf(layerName);
      if (own) parts.push(builtFrom(layerName, unitNo, own));
      for (const found of pairs.filter((p) => p.pair.below === layerName)) parts.push(feeds(layerName, unitNo, found));
      for (const found of ablated.filter((a) => a.entry.layer === layerName)) parts.push(mattersFor(layerName, unitNo, found));
      return parts.length ? el("div", { class: "circuits" }, ...parts) : null;
    }

    /* ---------- the circuit page ---------- */

    let redraw = null;   // the shown graph's line drawing, for window resizes
    window.addEventListener("resize", () => { if (redraw) redraw(); });

    /* A unit on the circuit page; `share` (null: none shown) its share of the unit above. */
    function graphCard(layer, unit, depth, share) {
      const label = el("span", { class: "circuit-label note" });
      const thumb = unitThumb(layer, unit, GRAPH_THUMB, (name, confident) => {
        label.textContent = name;
        label.title = name;
        label.classList.toggle("weak", !confident);
      });
      const target = depth === 0 || !pairOf(layer) ? routeHash(layer, unit) : circuitHash(layer, unit);
      const linked = knownUnit(layer, unit);
      return el(linked ? "a" : "div", { class: `graph-unit${depth === 0 ? " root" : ""}`, href: linked ? target : null, "data-layer": layer, "data-unit": String(unit), "data-depth": String(depth),
        "data-share": share === null ? null : String(share), title: depth === 0 ? "open the unit's card" : "open this unit's circuit" },
        thumb,
        el("div", { class: "circuit-unit-head" }, el("span", { class: "unit-no", text: `#${unit}` }),
          share === null ? null : el("span", { class: `share ${share < 0 ? "negative" : "positive"}`, text: signed(share) })),
        label);
    }

    /* The strongest `n` inputs of a unit by |share| (both signs), strongest first. */
    const strongest = (inputs, n) => [...inputs.pos, ...inputs.neg].sort((a, b) => Math.abs(b.share) - Math.abs(a.share) || a.unit - b.unit).slice(0, n);

    function renderCircuit(key) {
      const slash = key.lastIndexOf("/");
      const layerName = key.slice(0, slash), unit = Number(key.slice(slash + 1));
      const found = slash > 0 && /^\d+$/.test(key.slice(slash + 1)) ? pairOf(layerName) : null;
      if (!found || !knownUnit(layerName, unit)) return false;
      const { set, pair } = found;
      const below = pairOf(pair.below);
      const graph = el("div", { class: "circuit-graph", "data-layer": layerName, "data-unit": String(unit) }, el("p", { class: "note", text: "loading…" }));
      const root = setMain("circuit",
        el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ", el("a", { href: routeHash(layerName), text: layerName }), " / ",
          el("a", { href: routeHash(layerName, unit), text: `unit ${unit}` }), " / ", el("span", { text: "circuit" })),
        el("h1", { text: `Circuit of ${layerName} · unit ${unit}` }),
        el("p", { class: "note", text: `The unit (top), its strongest ${GRAPH_POS} excitatory and ${GRAPH_NEG} inhibitory inputs in ${pair.below}${below ? `, and their strongest ${GRAPH_NEXT} inputs in ${below.pair.below}` : ""}. A line's width is the input's share of the unit above it (gradient × activation at that unit's top hits), red excitatory, blue inhibitory. Click a unit for its own circuit.` }),
        graph);
      redraw = null;
      Promise.all([load(set, pair.script), below ? load(below.set, below.pair.script) : Promise.resolve(null)]).then(([upper, lower]) => {
        if (!graph.isConnected) return;
        const inputs = inputsOf(upper, unit);
        const first = [...inputs.pos.slice(0, GRAPH_POS), ...inputs.neg.slice(0, GRAPH_NEG)];
        const top = graphCard(layerName, unit, 0, null);
        const edges = [];   // [upper card, lower card, share]
        const row1 = first.map((r) => {
          const card = graphCard(pair.below, r.unit, 1, r.share);
          edges.push([top, card, r.share]);
          return card;
        });
        const row2 = new Map();   // unit -> card, each lower unit drawn once
        if (lower) {
          first.forEach((r, i) => {
            for (const s of strongest(inputsOf(lower, r.unit), GRAPH_NEXT)) {
              if (!row2.has(s.unit)) row2.set(s.unit, graphCard(below.pair.below, s.unit, 2, null));  // its shares: on its lines (it may feed several)
              edges.push([row1[i], row2.get(s.unit), s.share]);
            }
          });
        }
        const svg = document.createElementNS(SVG, "svg");
        svg.setAttribute("class", "circuit-lines");
        svg.setAttribute("aria-hidden", "true");
        const rowOf = (name, cards, depth) => el("div", { class: "graph-row", "data-depth": String(depth) },
          el("span", { class: "graph-layer note", text: name }), el("div", { class: "graph-cards" }, ...cards));
        graph.replaceChildren(svg, rowOf(layerName, [top], 0),
          row1.length ? rowOf(pair.below, row1, 1) : el("p", { class: "note", text: `No input from ${pair.below}.` }),
          row2.size ? rowOf(below.pair.below, [...row2.values()], 2) : null);
        const widest = Math.max(0, ...edges.map((e) => Math.abs(e[2])));
        redraw = () => {
          if (!graph.isConnected) { redraw = null; return; }
          const frame = graph.getBoundingClientRect();
          svg.setAttribute("width", String(frame.width));
          svg.setAttribute("height", String(frame.height));
          svg.replaceChildren(...edges.map(([from, to, share]) => {
            const a = from.getBoundingClientRect(), b = to.getBoundingClientRect();
            const x1 = a.left + a.width / 2 - frame.left, y1 = a.bottom - frame.top, x2 = b.left + b.width / 2 - frame.left, y2 = b.top - frame.top;
            const path = document.createElementNS(SVG, "path");
            const mid = (y1 + y2) / 2;
            path.setAttribute("d", `M ${x1} ${y1} C ${x1} ${mid}, ${x2} ${mid}, ${x2} ${y2}`);
            path.setAttribute("class", `edge ${share < 0 ? "negative" : "positive"}`);
            path.setAttribute("stroke-width", String(widest > 0 ? 1 + (7 * Math.abs(share)) / widest : 1));
            path.setAttribute("data-share", String(share));
            const title = document.createElementNS(SVG, "title");
            title.textContent = `${to.dataset.layer} #${to.dataset.unit} → ${from.dataset.layer} #${from.dataset.unit}: ${signed(share)}`;
            path.append(title);
            return path;
          }));
        };
        redraw();
        graph.dataset.done = "1";
      }, (error) => { if (graph.isConnected) graph.replaceChildren(el("p", { class: "note error", text: error.message })); });
      return root !== null;
    }

    /* ---------- the overview page and the lists ---------- */

    const hash = (set) => "#/" + set.folder.split("/").map(encodeURIComponent).join("/");
    const layerLink = (name) => (layerNamed(name) ? el("a", { href: routeHash(name), text: name }) : el("span", { text: name }));
    const pairText = (set, pair) => `${count(pair.units, "unit")}, top ${set.record.top} inputs each from ${count(set.record.hits, "hit")}, fed ${METHODS[pair.method] || String(pair.method)}${pair.direct ? ", direct (kernels)" : ""}`;
    const ablationText = (set, entry) => `${count(entry.units, "unit")} zeroed over ${count(set.ablation.images, "image")}`;
    const setSummary = (set) => `${count(set.pairs.length, "pair")}, ${count(set.ablated.length, "ablated layer")}`;

    function render(folder) {
      const set = sets.find((s) => s.folder === folder);
      if (!set) return renderAblation(folder);
      const pairRows = set.pairs.map((pair) => el("tr", { "data-layer": pair.layer },
        el("td", null, layerLink(pair.layer)), el("td", null, layerLink(pair.below)), el("td", { text: METHODS[pair.method] || String(pair.method) }),
        el("td", { text: pair.direct ? "yes" : "no" }), el("td", { class: "num", text: String(pair.units) }), el("td", { class: "num", text: String(pair.below_units) })));
      const ablationRows = set.ablated.map((entry) => {
        const bau = isObject(entry.bau) ? entry.bau : {};
        return el("tr", { "data-layer": entry.layer }, el("td", null, layerLink(entry.layer)), el("td", { class: "num", text: String(entry.units) }),
          el("td", { class: "num", text: isNum(bau.n) ? String(bau.n) : "—" }), el("td", { class: "num", text: isNum(bau.classes) ? String(bau.classes) : "—" }),
          el("td", { class: "num", text: pct(bau.top_beats_random) }), el("td", { class: "num", text: fmt(bau.mean_drop_top) }), el("td", { class: "num", text: fmt(bau.mean_drop_random) }),
          el("td", null, el("a", { class: "ablation-classes-link", href: ablationHash(set, entry.layer), text: "by class →" })));
      });
      const head = (...names) => el("thead", null, el("tr", null, ...names.map((n) => el("th", { text: n }))));
      setMain("circuits",
        el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ", el("span", { text: `${set.folder}/` })),
        el("h1", { text: "Circuits" }),
        el("p", { class: "note", text: `Each pair: every unit's top ${set.record.top} excitatory and inhibitory inputs in the layer below (gradient × activation at its top ${count(set.record.hits, "hit")}); a unit's card lists them ("Built from"), the units it feeds, and opens its circuit.` }),
        set.pairs.length ? el("table", { class: "layer-table circuit-pairs" }, head("layer", "built from", "fed", "direct", "units", "lower units"), el("tbody", null, ...pairRows)) : null,
        set.ablation ? el("h2", { text: "Ablation" }) : null,
        set.ablation ? el("p", { class: "note", text: `Each unit zeroed alone on ${count(set.ablation.images, "image")} (seed ${set.ablation.seed}, classes by ${set.ablation.class_by === "predicted" ? "the predicted class" : "label"}): the drop of every class's logit and accuracy. Bau et al.'s check: a class's top n units (by drop) zeroed together against n random units.` }) : null,
        ablationRows.length ? el("table", { class: "layer-table circuit-ablation-table" }, head("layer", "units", "n", "classes", "top beats random", "mean drop, top n", "mean drop, random n", "units per class"), el("tbody", null, ...ablationRows)) : null);
      for (const link of document.querySelectorAll(".circuits-link")) link.classList.toggle("current", link.getAttribute("data-folder") === folder);
      return true;
    }

    /* ---------- an ablated layer's classes: #/circuits/ablation/<layer>[/<class>] ---------- */

    let classPage = null;   // {set, entry, crumbs, list, detail, crumb, ready} while on screen
    let classToken = 0;

    /* {set, entry, k} (k null: no class chosen) for a folder path "<folder>/ablation/<layer>[/<k>]"; null if none. */
    function parseAblation(path) {
      for (const set of sets) {
        const prefix = `${set.folder}/ablation/`;
        if (!path.startsWith(prefix)) continue;
        const rest = path.slice(prefix.length);
        const whole = set.ablated.find((entry) => entry.layer === rest);
        if (whole) return { set, entry: whole, k: null };
        const slash = rest.lastIndexOf("/");
        const entry = slash > 0 && /^\d+$/.test(rest.slice(slash + 1)) ? set.ablated.find((e) => e.layer === rest.slice(0, slash)) : null;
        if (entry) return { set, entry, k: Number(rest.slice(slash + 1)) };
      }
      return null;
    }

    /* The classes of a payload that have images (its "classes" keys), by index: [{k, name, units: [{unit, drop}]}]. */
    function ablatedClasses(set, payload) {
      const classes = isObject(payload.classes) ? payload.classes : {};
      return Object.keys(classes).filter((key) => /^\d+$/.test(key)).map(Number).sort((a, b) => a - b).map((k) => ({
        k, name: className(set, payload, k),
        units: list(classes[String(k)]).filter((row) => Array.isArray(row) && Number.isInteger(row[0]) && isNum(row[1])).map(([unit, drop]) => ({ unit, drop })),
      }));
    }

    function renderAblation(path) {
      const found = parseAblation(path);
      if (!found) return false;
      const { set, entry, k } = found;
      if (!classPage || classPage.entry !== entry || !classPage.crumbs.isConnected) classPage = buildClassPage(set, entry);
      const page = classPage, mine = ++classToken;
      delete page.detail.dataset.done;
      page.ready.then((classes) => { if (mine === classToken && page === classPage) showAblatedClass(page, classes, k); },
        (error) => {
          if (mine !== classToken) return;
          page.list.replaceChildren();
          page.detail.replaceChildren(el("p", { class: "note error", text: error.message }));
        });
      for (const link of document.querySelectorAll(".circuits-link")) link.classList.toggle("current", link.getAttribute("data-folder") === set.folder);
      return true;
    }

    function buildClassPage(set, entry) {
      const ab = set.ablation;
      const crumb = el("span");
      const search = el("input", { type: "search", class: "class-search", placeholder: "Find a class", "aria-label": "Find a class by name or index" });
      const found = el("span", { class: "note small class-found", role: "status" });
      const items = el("ul", { class: "class-list ablation-classes" }, el("li", { class: "note" }, "loading…"));
      const detail = el("div", { class: "class-detail ablation-detail", "data-layer": entry.layer });
      const layerRef = layerNamed(entry.layer) ? el("a", { href: routeHash(entry.layer), text: entry.layer }) : el("span", { text: entry.layer });
      const main = setMain("circuits-ablation",
        el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ", el("a", { href: hash(set), text: `${set.folder}/` }), " / ",
          el("a", { href: ablationHash(set, entry.layer), text: `ablation of ${entry.layer}` }), " / ", crumb),
        el("div", { class: "explain-head" }, el("h1", null, "Ablation of ", layerRef, " by class"),
          el("span", { class: "note explain-facts", text: `${ablationText(set, entry)} (classes by ${ab.class_by === "predicted" ? "the predicted class" : "label"})` })),
        el("div", { class: "classes-layout" }, el("aside", { class: "classes-side" }, search, found, items), detail));
      search.oninput = () => {
        const q = search.value.trim().toLowerCase();
        let shown = 0;
        for (const li of items.children) {
          const hit = !q || (li.dataset.name || "").includes(q) || li.dataset.class === q.replace(/^#/, "");
          li.hidden = !hit;
          shown += hit;
        }
        found.textContent = q ? `${shown} match${shown === 1 ? "" : "es"}${shown ? "" : " (only classes with images in the ablation are listed)"}` : "";
      };
      const ready = load(set, entry.script).then((payload) => {
        const classes = ablatedClasses(set, payload);
        search.placeholder = `Find a class (${classes.length})`;
        items.replaceChildren(...classes.map((c) => el("li", { "data-class": String(c.k), "data-name": c.name.toLowerCase() },
          el("a", { href: ablationHash(set, entry.layer, c.k) },
            el("span", { class: "class-name", text: c.name, title: c.name }),
            el("span", { class: "class-index note", text: `#${c.k}` }),
            el("span", { class: "class-count note", text: c.units.length ? `most: #${c.units[0].unit} · drop ${fmt(c.units[0].drop)}` : "no unit",
              title: c.units.length ? `zeroing unit ${c.units[0].unit} lowers this class's logit most (by ${fmt(c.units[0].drop)} on average)` : "" })))));
        items.dataset.done = "1";
        return classes;
      });
      return { set, entry, crumbs: main.firstChild, list: items, detail, crumb, ready };
    }

    function showAblatedClass(page, classes, k) {
      const { set, entry, detail, list: items } = page;
      const c = k === null ? null : classes.find((x) => x.k === k);
      page.crumb.textContent = k === null ? "classes" : (c ? c.name : `class ${k}`);
      for (const item of items.children) item.classList.toggle("current", item.dataset.class === String(k));
      const current = items.querySelector("li.current");
      if (current) {
        const a = current.getBoundingClientRect(), b = items.getBoundingClientRect();
        if (a.top < b.top || a.bottom > b.bottom) items.scrollTop = current.offsetTop - (items.clientHeight - current.offsetHeight) / 2;
      }
      detail.dataset.class = k === null ? "" : String(k);
      const bau = bauText(set, entry)
        ? el("p", { class: "note small ablation-bau", text: `Bau et al.'s check over the whole layer (not stored per class): ${bauText(set, entry)}.` }) : null;
      if (k === null) {
        detail.replaceChildren(el("p", { class: "note", text: `Choose a class (${classes.length} with images) to see the units of ${entry.layer} whose removal lowers its logit most.` }), bau);
      } else if (!c) {
        detail.replaceChildren(el("h2", { class: "class-title", text: `class ${k}` }), el("p", { class: "note", text: `No image of class ${k} was in the ablation.` }), bau);
      } else {
        const widest = Math.max(0, ...c.units.map((u) => Math.abs(u.drop)));
        const cards = c.units.map((u, rank) => card(entry.layer, u.unit, u.drop, widest, routeHash(entry.layer, u.unit), null,
          el("span", { class: "note rank", text: `rank ${rank + 1}`, title: `the unit whose removal hurts this class ${rank + 1}${["st", "nd", "rd"][rank] || "th"} most` }), `drop ${fmt(u.drop)}`, CLASS_THUMB, "circuit-unit ablation-unit"));
        detail.replaceChildren(
          el("div", { class: "class-head" }, el("h2", { class: "class-title", text: c.name }), el("span", { class: "note", text: `class ${k}` })),
          el("p", { class: "note small", text: `The ${count(c.units.length, "unit")} of ${entry.layer} whose removal (each zeroed alone) lowers this class's logit most, as the mean drop over the class's images (red: the class needs the unit; bars scaled to the largest). Each card opens the unit.` }),
          c.units.length ? el("div", { class: "ablation-units" }, ...cards) : el("p", { class: "note", text: "No unit's removal changes this class's logit." }),
          bau);
      }
      detail.dataset.done = "1";
    }

    return {
      arrive: scripts.arrive,
      homeSection() {
        if (!sets.length) return [];
        const items = [];
        for (const set of sets) {
          items.push(el("li", { "data-kind": "circuits", "data-folder": set.folder }, el("a", { href: hash(set), text: `Circuits: ${set.folder}/` }), el("span", { class: "note", text: ` · ${setSummary(set)}` })));
          for (const pair of set.pairs) {
            items.push(el("li", { "data-kind": "pair", "data-layer": pair.layer }, el("a", { href: routeHash(pair.layer), text: `${pair.layer} ← ${pair.below}` }), el("span", { class: "note", text: ` · ${pairText(set, pair)}` })));
          }
          for (const entry of set.ablated) {
            items.push(el("li", { "data-kind": "ablation", "data-layer": entry.layer }, el("a", { href: routeHash(entry.layer), text: `${entry.layer}: ablation` }),
              el("span", { class: "note", text: ` · ${ablationText(set, entry)}${bauText(set, entry) ? `; ${bauText(set, entry)}` : ""}` })));
          }
        }
        return [el("h2", { text: "Circuits" }), el("ul", { class: "analysis-list circuits-list" }, ...items)];
      },
      navLinks() {
        if (!sets.length) return [];
        return [el("div", { class: "nav-heading", text: "Circuits" }), ...sets.map((set) => el("a", { class: "layer-link circuits-link", href: hash(set), "data-folder": set.folder },
          el("span", { class: "layer-name", text: `${set.folder}/` }), el("span", { class: "layer-meta", text: setSummary(set) })))];
      },
      render,
      renderCircuit,
      unitSection,
    };
  };
})();
