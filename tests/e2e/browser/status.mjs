// Open the status page in headless Chromium, wait until it lists <count> channels, and print one
// JSON line: {channels, engines, updated, peers, errors, stopped}. With an API key, type it into the
// key field and press Stop on the first channel, then wait until the page no longer lists it.
// Usage: node status.mjs <page url> <count> <timeout seconds> [screenshot.png] [api key]
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [pageUrl, count, timeout, screenshot, apiKey] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "trioproxy-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1400, height: 560 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
const listed = (page) =>
  page.$$eval("#channels tbody tr[data-channel]:not([data-closing])", (rows) => rows.map((r) => r.dataset.channel));
let result = {};
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`${r.url()} ${r.failure()?.errorText}`));
  await page.goto(pageUrl);
  const deadline = Date.now() + Number(timeout) * 1000;
  let channels = [];
  while (Date.now() < deadline) {
    channels = await listed(page);
    if (channels.length >= Number(count)) break;
    await page.waitForTimeout(200);
  }
  const engines = await page.$$eval("#engines tbody tr td:first-child", (c) => c.map((t) => t.textContent));
  const updated = await page.textContent("#updated");
  const peers = await page.$$eval("#channels tbody tr[data-channel] td:nth-child(8)",
    (cells) => cells.map((c) => c.textContent));
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  let stopped = null;
  if (apiKey && channels.length) {
    await page.fill("#apikey", apiKey);
    await page.press("#apikey", "Enter");
    await page.click(`#channels tr[data-channel="${channels[0]}"] button`);
    while (Date.now() < deadline && (await listed(page)).includes(channels[0])) {
      await page.waitForTimeout(200);
    }
    stopped = { channel: channels[0], message: await page.textContent("#message"),
      remaining: await listed(page) };
  }
  result = { channels, engines, updated, peers, errors, stopped };
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
