// Open page.html?src=<playlist> in headless Chromium and wait until the video has played
// <seconds>. Prints one JSON line: {ok, currentTime, manifestAt, fatal, errors, elapsed}.
// Usage: node play.mjs <page url> <playlist url> <seconds> <timeout seconds>
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [pageUrl, playlist, seconds, timeout] = process.argv.slice(2);
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
let result = { ok: false };
try {
  const page = await browser.newPage();
  page.on("console", (message) => process.stderr.write(`console: ${message.text()}\n`));
  await page.goto(`${pageUrl}?src=${encodeURIComponent(playlist)}`);
  const deadline = began + Number(timeout) * 1000;
  let report = {};
  let currentTime = 0;
  while (Date.now() < deadline) {
    await page.waitForTimeout(500);
    report = await page.evaluate(() => window.report);
    currentTime = await page.evaluate(() => window.playerTime());
    if (report.fatal || currentTime >= Number(seconds)) break;
  }
  result = {
    ok: !report.fatal && currentTime >= Number(seconds),
    currentTime,
    manifestAt: report.manifestAt,
    fatal: report.fatal,
    errors: report.errors,
    elapsed: (Date.now() - began) / 1000,
  };
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
