/* A Web Worker stand-in for pages opened from file://, where browsers refuse `new Worker`.
 *
 * Material's search runs in a worker; its offline plugin would load a shim for this from
 * unpkg.com, and this site loads nothing from the network (mkdocs.yml lists this file as the
 * "iframe-worker" polyfill, so the plugin adds no other). The worker's script runs in a hidden
 * iframe instead: messages to it are dispatched on the iframe's window, its postMessage calls
 * come back as "message" events on the stand-in. Served over http(s), the real Worker is used.
 */
(function () {
  "use strict";
  if (location.protocol !== "file:" || typeof window.Worker !== "function") return;

  class IframeWorker extends EventTarget {
    constructor(url) {
      super();
      this.onmessage = null;
      this.onerror = null;
      this._queue = [];
      this._ready = false;
      const frame = document.createElement("iframe");
      frame.style.display = "none";
      frame.setAttribute("aria-hidden", "true");
      document.body.appendChild(frame);
      this._frame = frame;
      const scope = frame.contentWindow;
      const worker = this;
      // The worker's global scope: postMessage answers the page, importScripts loads scripts.
      scope.postMessage = function (data) {
        const event = new MessageEvent("message", { data: data });
        if (typeof worker.onmessage === "function") worker.onmessage(event);
        worker.dispatchEvent(event);
      };
      scope.importScripts = function () {
        for (const src of arguments) {
          const script = scope.document.createElement("script");
          script.src = new URL(src, url).href;
          scope.document.head.appendChild(script);
        }
      };
      scope.close = function () { worker.terminate(); };
      const script = scope.document.createElement("script");
      script.src = new URL(url, location.href).href;
      script.onload = function () {
        worker._ready = true;
        for (const data of worker._queue.splice(0)) worker._deliver(data);
      };
      script.onerror = function (error) {
        if (typeof worker.onerror === "function") worker.onerror(error);
        worker.dispatchEvent(new Event("error"));
      };
      scope.document.head.appendChild(script);
    }

    _deliver(data) {
      const scope = this._frame && this._frame.contentWindow;
      if (scope) scope.dispatchEvent(new MessageEvent("message", { data: data }));
    }

    postMessage(data) {
      if (this._ready) this._deliver(data);
      else this._queue.push(data);
    }

    terminate() {
      if (this._frame) this._frame.remove();
      this._frame = null;
    }
  }

  window.Worker = IframeWorker;
})();
