// ReDoc under the site's CSP (templates/api/redoc.html, config/api_docs.py). Loaded
// before ReDoc's bundle, because the bundle writes <style> elements as it loads.
(function () {
  "use strict";
  // The page's policy allows styles that carry this script's nonce, and no other
  // inline style: every <style> a script here makes gets it. Markup injected into the
  // page cannot get it, since the parser does not come through here.
  var nonce = document.currentScript.nonce;
  // ReDoc's sidebar shows Redocly's logo from Redocly's CDN; this page loads nothing
  // from another origin. An empty image instead: ReDoc hides a logo that fails to load.
  var foreignLogo = /^https:\/\/cdn\.redoc\.ly\//;
  function local(value) {
    return foreignLogo.test(String(value)) ? "data:," : value;
  }
  var source = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: source.enumerable,
    get: source.get,
    set: function (value) {
      source.set.call(this, local(value));
    },
  });
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (this instanceof HTMLImageElement && String(name).toLowerCase() === "src") {
      value = local(value);
    }
    return setAttribute.call(this, name, value);
  };

  var createElement = document.createElement;
  document.createElement = function (tagName, options) {
    var element = createElement.call(document, tagName, options);
    if (element instanceof HTMLStyleElement) {
      element.setAttribute("nonce", nonce);
    }
    return element;
  };

  document.addEventListener("DOMContentLoaded", function () {
    var container = document.getElementById("redoc-container");
    window.Redoc.init(container.dataset.specUrl, {}, container);
  });
})();
