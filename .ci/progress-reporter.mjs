// A vitest reporter for CI only: appends one line per test file as it starts
// and ends to the file named by FETCH_CACHE_CI_PROGRESS, so that .ci/run can
// name the files still running and count what finished if it has to stop a
// run that hangs (vitest's JSON report is only written at the very end).
import { appendFileSync } from 'node:fs';
import { relative } from 'node:path';

const file = process.env.FETCH_CACHE_CI_PROGRESS;

function log(line) {
  if (file) appendFileSync(file, `${line}\n`);
}

export default class ProgressReporter {
  onTestModuleStart(module) {
    log(`start ${relative(process.cwd(), module.moduleId)} ${new Date().toISOString()}`);
  }

  onTestModuleEnd(module) {
    let passed = 0;
    let failed = 0;
    for (const t of module.children.allTests()) {
      const state = t.result().state;
      if (state === 'passed') passed++;
      else if (state === 'failed') failed++;
    }
    if (module.state() === 'failed' && failed === 0) failed = 1; // the file itself failed to load
    log(`end ${relative(process.cwd(), module.moduleId)} ${passed} ${failed} ${new Date().toISOString()}`);
  }
}
