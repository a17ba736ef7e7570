// Live updates of a request page. The server re-renders the page's live region (status, timeline,
// actions) and sends it over Server-Sent Events whenever the request moves; without this script the
// page works the same, and shows the news when reloaded.
(function () {
  'use strict';
  var region = document.querySelector('[data-live]');
  if (!region || !window.EventSource) {
    return;
  }
  var source = new EventSource(region.getAttribute('data-live'));
  var waiting = null;
  function typing() {
    var el = document.activeElement;
    return el && region.contains(el) && (el.tagName === 'TEXTAREA' || el.tagName === 'INPUT');
  }
  function show(html) {
    region.innerHTML = html;
  }
  // Never replace a form someone is typing in: the news waits until they leave it.
  region.addEventListener('focusout', function () {
    window.setTimeout(function () {
      if (waiting !== null && !typing()) {
        show(waiting);
        waiting = null;
      }
    }, 0);
  });
  source.addEventListener('live', function (e) {
    if (typing()) {
      waiting = e.data;
      return;
    }
    show(e.data);
  });
  source.addEventListener('end', function () {
    source.close();
  });
})();
