// Open page.html?src=<playlist> in headless Chromium and note the video's playback time every
// 250 ms for <seconds> seconds (less if hls.js reports a fatal error). Prints one JSON line:
// {samples: [[unix time in seconds, currentTime], ...], fatal, errors, elapsed}.
// Usage: node timeline.mjs <page url> <playlist url> <seconds>
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [pageUrl, playlist, seconds] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "trioproxy-chromium-"));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
// A fresh profile each run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const began = Date.now();
const samples = [];
let report = {};
try {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`console: ${message.text()}\n`));
  await page.goto(`${pageUrl}?src=${encodeURIComponent(playlist)}`);
  const deadline = began + Number(seconds) * 1000;
  while (Date.now() < deadline) {
    await page.waitForTimeout(250);
    const currentTime = await page.evaluate(() => window.playerTime());
    samples.push([Date.now() / 1000, currentTime]);
    report = await page.evaluate(() => window.report);
    if (report.fatal) break;
  }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
const result = {
  samples,
  fatal: report.fatal ?? null,
  errors: report.errors ?? [],
  elapsed: (Date.now() - began) / 1000,
};
console.log(JSON.stringify(result));
process.exit(result.fatal ? 1 : 0);
