/**
 * The CLI loads only the module of the command that runs (src/cli/run.ts): each command is found
 * through its first word's module, so a command whose word names another module, or no module,
 * would be unknown. Every command of the usage text is run with `--help` through `main`.
 */

import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { allCommands, COMMAND_WORDS, main } from '../../src/cli/run.js';

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

it('finds every command through the module of its first word', async () => {
  const commands = await allCommands();
  expect(new Set(commands.map((c) => c.words[0]))).toEqual(new Set(COMMAND_WORDS.keys()));
  for (const command of commands) {
    const out = capture();
    const err = capture();
    const status = await main([...command.words, '--help'], {
      stdout: out.stream,
      stderr: err.stream,
      env: {},
    });
    expect({ status, out: out.text(), err: err.text() }).toEqual({
      status: 0,
      out: `usage: fetch-cache ${command.usage}\n\n${command.summary}\n`,
      err: '',
    });
  }
});

it('lists every command in its usage text, and an unknown word is unknown', async () => {
  const err = capture();
  const status = await main(['fetch', 'nothing'], { stdout: capture().stream, stderr: err.stream, env: {} });
  expect(status).toBe(2);
  expect(err.text().split('\n')[0]).toBe("fetch-cache: unknown command 'fetch nothing'");
  for (const command of await allCommands()) expect(err.text()).toContain(`  ${command.usage}\n`);
});
