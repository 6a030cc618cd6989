// Drives the secret request page (`GET /r/{id}`, served by the Worker) in real headless
// Chromium, as a person would: open the link, read what is asked, pick a type, type the value,
// press the button. Prints one JSON object with what it saw; the Rust e2e test
// (tests/tests/api/request_browser.rs) decides what is right. Screenshots go to --screenshots.
//
//   node tests/browser/request_page.mjs --url URL --screenshots DIR [--value V --type T] [--name N]
//
// Without --value the page is only loaded and looked at (a link preview). Chromium is
// Debian's, launched by common.mjs.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch, parseFlags, text, visible } from './common.mjs';

function parseArgs(argv) {
    const args = { name: 'request-page', ...parseFlags(argv) };
    if (!args.url || !args.screenshots) throw new Error('--url and --screenshots are required');
    return args;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    mkdirSync(args.screenshots, { recursive: true });
    const browser = await launch();
    const result = { screenshots: [], console_errors: [] };
    try {
        const page = await (await browser.newContext()).newPage();
        page.on('console', (message) => {
            if (message.type() === 'error') result.console_errors.push(message.text());
        });
        page.on('pageerror', (error) => result.console_errors.push(String(error)));
        const response = await page.goto(args.url, { waitUntil: 'load' });
        result.status = response.status();
        result.title = await page.title();
        result.loaded_state = await text(page, '#state');
        result.path = await text(page, '#path');
        result.description = await text(page, '#description');
        result.selected_type = (await page.$('#type')) ? await page.inputValue('#type') : null;
        result.form = await visible(page, '#value');
        const loaded = join(args.screenshots, `${args.name}-loaded.png`);
        await page.screenshot({ path: loaded, fullPage: true });
        result.screenshots.push(loaded);

        if (args.value !== undefined && result.form) {
            if (args.type) await page.selectOption('#type', args.type);
            await page.fill('#value', args.value);
            await page.click('#submit');
            await page.waitForFunction(
                (before) => document.querySelector('#state').textContent.trim() !== before,
                result.loaded_state,
                { timeout: 15000 },
            );
            result.submitted_state = await text(page, '#state');
            result.form_after = await visible(page, '#value');
            result.value_left_in_page = await page.evaluate(
                () => document.querySelector('#value').value,
            );
            const submitted = join(args.screenshots, `${args.name}-submitted.png`);
            await page.screenshot({ path: submitted, fullPage: true });
            result.screenshots.push(submitted);
        }
    } finally {
        await browser.close();
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error) => {
    process.stderr.write(`request_page.mjs: ${error.stack || error}\n`);
    process.exit(1);
});
