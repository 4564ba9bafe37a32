/* convscope atlas viewer: a class's "concept atlas" (convscope explain ATLAS FOLDER).
 *
 * viewer/data/analyses.js registers each ATLAS/explain/<name>/classes.json as
 * convscopeRegister("classes", i, {folder: "explain/<name>", record}), the record without its
 * per-class units (convscope.atlas.viewer.classes_summary: with 1,000 classes the whole record is
 * ~10 MB). Those come from the folder's own data scripts, loaded when shown
 * (convscope.explain.classes_viewer): viewer/class-<k>.js (viewer/class-all.js for all images)
 * holds a class's entry of classes.json, viewer/units-<i>.js the classes each unit of the
 * record's layer i matters for. Routes: #/explain/<name> (all images), #/explain/<name>/<k>.
 * A unit's card lists the classes it matters for (unitSection). Every string from the data goes
 * into the page as text, as in viewer.js.
 */
(function () {
  "use strict";

  window.convscopeClasses = function (api, folders) {
    const { el, fmt, isNum, isObject, dataScripts, routeHash, setMain, layerNamed, unitPatches } = api;
    const list = (x) => (Array.isArray(x) ? x : []);
    const scripts = dataScripts(isObject, "rerun convscope explain ATLAS FOLDER to write the viewer's data");

    const sets = folders.filter((f) => f.kind === "classes").map((f) => {
      const record = f.record;
      const classes = list(record.classes).filter((c) => isObject(c) && Number.isInteger(c.class) && c.class >= 0);
      return { folder: f.folder, name: f.folder.slice(f.folder.indexOf("/") + 1), record, classes,
               byIndex: new Map(classes.map((c) => [c.class, c])), layers: list(record.layers).map(String) };
    });

    const hash = (set, k) => "#/explain/" + set.name.split("/").map(encodeURIComponent).join("/") + (k === null || k === undefined ? "" : `/${k}`);
    const className = (c) => (c.name === null || c.name === undefined ? `class ${c.class}` : String(c.name));
    const signed = (share) => (isNum(share) ? `${share >= 0 ? "+" : "−"}${Math.abs(100 * share).toFixed(1)}%` : "—");
    const count = (n, word, words) => `${isNum(n) ? n.toLocaleString("en-US") : "?"} ${n === 1 ? word : (words || word + "s")}`;
    const summary = (set) => `${count(set.record.image_count, "image")}, ${count(set.classes.length, "class", "classes")}, ${set.record.method || "gradient x activation"}`;

    /* The payload of a data script inside the set's folder, loaded once. */
    const load = (set, path) => scripts.load(set.folder, path);

    const classFile = (k) => `viewer/class-${k === null ? "all" : k}.js`;

    /* ---------- the class page ---------- */

    let page = null;   // {set, root, list, detail, shown} while the page is on screen
    let token = 0;

    function parse(key) {
      for (const set of sets) {
        if (key === set.name) return { set, k: null };
        if (key.startsWith(set.name + "/")) {
          const rest = key.slice(set.name.length + 1);
          if (rest === "all") return { set, k: null };
          if (/^\d+$/.test(rest) && set.byIndex.has(Number(rest))) return { set, k: Number(rest) };
          return { set, k: undefined };
        }
      }
      return null;
    }

    function render(key) {
      const found = parse(key);
      if (!found) return false;
      const { set, k } = found;
      if (k === undefined) return false;
      if (!page || page.set !== set || !page.root.isConnected) page = build(set);
      page.crumb.textContent = k === null ? "all images" : className(set.byIndex.get(k));
      for (const item of page.list.children) item.classList.toggle("current", item.dataset.class === (k === null ? "all" : String(k)));
      const current = page.list.querySelector("li.current");
      if (current && !isVisibleIn(current, page.list)) page.list.scrollTop = current.offsetTop - (page.list.clientHeight - current.offsetHeight) / 2;
      showClass(set, k);
      for (const link of document.querySelectorAll(".classes-link")) link.classList.toggle("current", link.getAttribute("data-folder") === set.folder);
      return true;
    }

    function isVisibleIn(node, box) {
      const a = node.getBoundingClientRect(), b = box.getBoundingClientRect();
      return a.top >= b.top && a.bottom <= b.bottom;
    }

    function build(set) {
      const r = set.record;
      const item = (k, name, images, correct) => el("li", { "data-class": k === null ? "all" : String(k), "data-name": name.toLowerCase() },
        el("a", { href: hash(set, k) },
          el("span", { class: "class-name", text: name, title: name }),
          el("span", { class: "class-index note", text: k === null ? "" : `#${k}` }),
          el("span", { class: "class-count note", text: `${isNum(images) ? images : "?"} img · ${isNum(correct) ? correct : "?"} right`,
            title: `${count(images, "image")}; the model predicted ${isNum(correct) ? correct : "?"} of them as this class` })));
      const overall = isObject(r.overall) ? r.overall : {};
      const items = el("ul", { class: "class-list" }, item(null, "all images", overall.images, overall.correct),
        ...set.classes.map((c) => item(c.class, className(c), c.images, c.correct)));
      const search = el("input", { type: "search", class: "class-search", placeholder: `Find a class (${set.classes.length})`, "aria-label": "Find a class by name or index" });
      const found = el("span", { class: "note small class-found", role: "status" });
      search.oninput = () => {
        const q = search.value.trim().toLowerCase();
        let shown = 0;
        for (const li of items.children) {
          const hit = !q || li.dataset.name.includes(q) || li.dataset.class === q.replace(/^#/, "");
          li.hidden = !hit;
          shown += hit;
        }
        found.textContent = q ? `${shown} match${shown === 1 ? "" : "es"}` : "";
      };
      const crumb = el("span");
      const detail = el("div", { class: "class-detail" });
      const by = r.class_by === "predicted" ? "its predicted class" : (r.by_label === r.image_count ? "its label" : "its label (its predicted class where it has none)");
      const root = setMain("classes",
        el("div", { class: "crumbs" }, el("a", { href: "#", text: "layers" }), " / ", el("span", { text: "explain" }), " / ",
          el("a", { href: hash(set), text: set.name }), " / ", crumb),
        el("div", { class: "explain-head" }, el("h1", { text: "Class relevance" }),
          el("span", { class: "note explain-facts", text: `${summary(set)} · each image explained for ${by} · top ${r.top} units per image counted` })),
        el("div", { class: "classes-layout" },
          el("aside", { class: "classes-side" }, search, found, items),
          detail));
      return { set, root: root.firstChild, list: items, detail, crumb };
    }

    function showClass(set, k) {
      const mine = ++token;
      const detail = page.detail;
      detail.dataset.class = k === null ? "all" : String(k);
      delete detail.dataset.done;
      const entry = k === null ? (isObject(set.record.overall) ? set.record.overall : {}) : set.byIndex.get(k);
      const title = k === null ? "all images" : className(entry);
      const head = el("div", { class: "class-head" }, el("h2", { class: "class-title", text: title }),
        el("span", { class: "note", text: `${k === null ? "" : `class ${k} · `}${count(entry.images, "image")}, the model got ${isNum(entry.correct) ? entry.correct : "?"} right` }));
      detail.replaceChildren(head, el("p", { class: "note", text: "loading…" }));
      load(set, classFile(k)).then((payload) => {
        if (mine !== token) return;
        const layers = list(payload.layers).filter(isObject);
        const sections = layers.map((layer) => layerSection(set, layer, entry));
        const jumps = sections.map((section) => {
          const button = el("button", { type: "button", class: "link layer-jump", text: section.dataset.layer });
          button.onclick = () => section.scrollIntoView({ block: "start" });
          return button;
        });
        detail.replaceChildren(head,
          el("nav", { class: "layer-jumps note small", "aria-label": "Go to a layer" }, "layers: ", ...jumps),
          el("p", { class: "note small", text: `Per layer, the units with the highest mean share of the class logit's relevance over ${k === null ? "all images (each for its own class)" : "the class's images"}: signed, red raises the logit, blue lowers it (bars scaled to the layer's largest). Each card shows the unit's top patches from the atlas and links to it.` }),
          ...sections);
        detail.dataset.done = "1";
      }, (error) => {
        if (mine === token) detail.replaceChildren(head, el("p", { class: "note error", text: error.message }));
      });
    }

    /* One layer of a class: its top units as small cards, patches drawn once the section comes near. */
    function layerSection(set, layer, entry) {
      const name = String(layer.layer);
      const units = list(layer.units).filter((u) => isObject(u) && Number.isInteger(u.unit));
      const widest = Math.max(0, ...units.map((u) => (isNum(u.mean_share) ? Math.abs(u.mean_share) : 0)));
      const known = layerNamed(name);
      const cards = units.map((u) => {
        const bar = el("span", { class: `share-bar ${u.mean_share < 0 ? "negative" : "positive"}` });
        bar.style.width = `${widest > 0 ? Math.min(50, (50 * Math.abs(isNum(u.mean_share) ? u.mean_share : 0)) / widest) : 0}%`;
        const linked = known && u.unit < known.units;
        const slot = el("div", { class: "class-unit-patches" });
        const card = el(linked ? "a" : "div", { class: "class-unit", href: linked ? routeHash(name, u.unit) : null, "data-layer": name, "data-unit": String(u.unit),
          "data-share": String(u.mean_share), "data-top-count": String(u.top_count) },
          slot,
          el("div", { class: "class-unit-head" }, el("span", { class: "unit-no", text: `#${u.unit}` }), el("span", { class: "share", text: signed(u.mean_share) })),
          el("span", { class: "share-track", "aria-hidden": "true" }, bar),
          el("div", { class: "card-foot top-count", text: `top ${set.record.top} in ${u.top_count} of ${count(entry.images, "image")}`,
            title: `among the top ${set.record.top} units of ${u.top_count} of the ${count(entry.images, "image")}; mean relevance ${fmt(u.mean_relevance)}` }));
        card.patchSlot = slot;
        return card;
      });
      const section = el("section", { class: "class-layer", "data-layer": name },
        el("h3", null, known ? el("a", { href: routeHash(name), text: name }) : el("span", { text: name })),
        cards.length ? el("div", { class: "class-units" }, ...cards) : el("p", { class: "note", text: "No unit of this layer carries this class's logit." }));
      const draw = () => {
        for (const card of cards) {
          const canvas = known ? unitPatches(name, Number(card.dataset.unit)) : null;
          card.patchSlot.replaceChildren(canvas || el("span", { class: "note small", text: "not in this atlas" }));
        }
      };
      const observer = new IntersectionObserver((seen) => {
        if (seen.some((s) => s.isIntersecting)) { observer.disconnect(); draw(); }
      }, { rootMargin: "200px 0px" });
      observer.observe(section);
      return section;
    }

    /* ---------- a unit's card: the classes it matters for ---------- */

    function unitSection(layerName, unitNo) {
      const parts = [];
      for (const set of sets) {
        const i = set.layers.indexOf(layerName);
        if (i < 0) continue;
        const body = el("div", { class: "matters-body" }, el("p", { class: "note", text: "loading…" }));
        const section = el("section", { class: "matters-for", "data-folder": set.folder },
          el("h2", { class: "section-title" }, "Matters for classes ", el("a", { class: "note small-inline", href: hash(set), text: `(class relevance: ${summary(set)})` })),
          body);
        load(set, `viewer/units-${i}.js`).then((payload) => {
          const units = isObject(payload.units) ? payload.units : {};
          const rows = list(units[String(unitNo)]).filter((row) => Array.isArray(row) && row.length >= 4);
          if (!rows.length) {
            body.replaceChildren(el("p", { class: "note", text: `Not among the top ${set.record.top} units of any class at this layer.` }));
          } else {
            body.replaceChildren(
              el("p", { class: "note small", text: `The classes in whose top ${set.record.top} units it is, by its mean share of the class logit's relevance over the class's images (rank among the class's units; images that had it in their own top ${set.record.top}).` }),
              el("ol", { class: "matters-list" }, ...rows.map(([k, share, rank, top]) => {
                const c = set.byIndex.get(k) || { class: k, name: null, images: null };
                return el("li", { class: "matters-class", "data-class": String(k), "data-share": String(share), "data-rank": String(rank) },
                  el("a", { href: hash(set, k), text: className(c), title: `class ${k}` }),
                  el("span", { class: `share ${share < 0 ? "negative" : "positive"}`, text: ` ${signed(share)}` }),
                  el("span", { class: "note", text: ` rank ${rank} · ${top}/${isNum(c.images) ? c.images : "?"}` }));
              })));
          }
          section.dataset.done = "1";
        }, (error) => {
          body.replaceChildren(el("p", { class: "note error", text: error.message }));
        });
        parts.push(section);
      }
      return parts.length ? el("div", { class: "matters" }, ...parts) : null;
    }

    /* ---------- what viewer.js asks for ---------- */

    return {
      arrive: scripts.arrive,
      homeSection() {
        if (!sets.length) return [];
        return [el("h2", { text: "Class relevance" }), el("ul", { class: "analysis-list classes-list" }, ...sets.map((set) => el("li", { "data-folder": set.folder },
          el("a", { href: hash(set), text: `Class relevance: ${summary(set)}` }), el("span", { class: "note", text: ` · ${set.folder}/` }))))];
      },
      navLinks() {
        if (!sets.length) return [];
        return [el("div", { class: "nav-heading", text: "Class relevance" }), ...sets.map((set) => el("a", { class: "layer-link classes-link", href: hash(set), "data-folder": set.folder },
          el("span", { class: "layer-name", text: set.name }), el("span", { class: "layer-meta", text: summary(set) })))];
      },
      render,
      unitSection,
    };
  };
})();
