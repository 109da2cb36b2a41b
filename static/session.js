// Counts down every <time data-remaining="seconds"> on the page, from the moment it loaded.
// Seconds rather than a date: the countdown is then right even when this clock is not.
"use strict";

(function () {
  const clocks = Array.from(document.querySelectorAll("time[data-remaining]"));
  if (clocks.length === 0) {
    return;
  }
  const loaded = performance.now();

  // 2591999 -> "29 d 23:59:59"; the same format as the server's `countdown` filter.
  function countdown(seconds) {
    const total = Math.max(0, Math.floor(seconds));
    const days = Math.floor(total / 86400);
    const hours = Math.floor((total % 86400) / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const rest = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    const clock = `${pad(hours)}:${pad(minutes)}:${pad(rest)}`;
    return days > 0 ? `${days} d ${clock}` : clock;
  }

  function tick() {
    const elapsed = (performance.now() - loaded) / 1000;
    for (const clock of clocks) {
      const left = Number(clock.dataset.remaining) - elapsed;
      clock.textContent = left > 0 ? countdown(left) : "expired";
    }
  }

  tick();
  setInterval(tick, 1000);
})();
