// The caller's API key, kept in this browser's localStorage and sent only as an
// "Authorization: Bearer …" header, never in a URL.
(function () {
  "use strict";
  var STORAGE_KEY = "hub.apiKey";

  function get() {
    try {
      return (window.localStorage.getItem(STORAGE_KEY) || "").trim();
    } catch (e) {
      return "";
    }
  }

  function set(value) {
    try {
      if (value) window.localStorage.setItem(STORAGE_KEY, value.trim());
      else window.localStorage.removeItem(STORAGE_KEY);
    } catch (e) {
      /* private mode: the key lives as long as the page */
    }
  }

  function headers() {
    var key = get();
    return key ? { Authorization: "Bearer " + key } : {};
  }

  // Wire an <input> to the stored key; onChange runs after the key changed.
  function bind(input, onChange) {
    input.value = get();
    input.addEventListener("change", function () {
      set(input.value);
      if (onChange) onChange();
    });
  }

  window.HubKey = { get: get, set: set, headers: headers, bind: bind };
})();
