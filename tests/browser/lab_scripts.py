"""JavaScript run inside JupyterLab by ``lab_page`` (through ``window.jupyterapp``).

Each constant is a function expression for Playwright's ``page.evaluate`` or
the body of a ``wait_for_function`` predicate; all take the notebook path
(``null`` for the current notebook) as their one argument, ``name``.
"""

# Helpers prepended to every snippet: find a notebook panel, read its kernel.
FIND_PANEL = """
const app = window.jupyterapp;
const panel = (name) => {
  const found = name
    ? Array.from(app.shell.widgets('main')).find(w => w.context && w.context.path === name)
    : app.shell.currentWidget;
  if (!found || !found.content || !found.sessionContext || !found.content.model) {
    throw new Error(`No open notebook called ${name === null ? '(current)' : name}; call open_notebook first.`);
  }
  return found;
};
// Fails the wait at once, rather than at its timeout, on a crash or a dialog
// (a missing kernelspec, say) that no test will click away.
const kernelIdle = (p) => {
  const dialog = document.querySelector('.jp-Dialog');
  if (dialog) throw new Error(`A JupyterLab dialog is open: ${dialog.innerText}`);
  const session = p.sessionContext.session;
  const status = session && session.kernel ? session.kernel.status : 'no kernel';
  if (status === 'dead' || status === 'autorestarting') {
    throw new Error(`The kernel of ${p.context.path} is ${status}: it crashed (see the server log).`);
  }
  return status === 'idle';
};
"""

# Opens a notebook, makes it current, and records kernel errors and stderr
# that belong to no cell (a widget callback that raised, say).
OPEN_AND_WATCH = """async (name) => {%s
  const widget = await app.commands.execute('docmanager:open', {path: name, factory: 'Notebook'});
  await widget.context.ready;
  app.shell.activateById(widget.id);
  window.__multioptKernelProblems = window.__multioptKernelProblems || [];
  const path = widget.context.path;
  if (!widget.__multioptWatched) {
    widget.__multioptWatched = true;
    widget.sessionContext.iopubMessage.connect((_, msg) => {
      const parentType = msg.parent_header && msg.parent_header.msg_type;
      if (parentType === 'execute_request') return;  // cell outputs: read from the model
      const where = `kernel output outside any cell (answer to ${parentType})`;
      const type = msg.header.msg_type;
      if (type === 'error') {
        const text = `${msg.content.ename}: ${msg.content.evalue}\\n${(msg.content.traceback || []).join('\\n')}`;
        window.__multioptKernelProblems.push({path, where, kind: 'error', text});
      } else if (type === 'stream' && msg.content.name === 'stderr') {
        window.__multioptKernelProblems.push({path, where, kind: 'stderr', text: msg.content.text});
      }
    });
  }
  return widget.id;
}""" % FIND_PANEL

# Clears outputs (so stored execution counts cannot pass for fresh ones),
# then starts Run All without waiting for it.
START_RUN_ALL = """async (name) => {%s
  const p = panel(name);
  app.shell.activateById(p.id);
  if (app.shell.currentWidget !== p) throw new Error(`Could not make ${p.context.path} current.`);
  await app.commands.execute('notebook:clear-all-cell-outputs');
  const state = {done: false, result: null};
  window.__multioptRunAll = state;
  app.commands.execute('runmenu:run-all').then(
    result => { state.done = true; state.result = String(result); },
    error => { state.done = true; state.result = `error: ${error}`; });
  return true;
}""" % FIND_PANEL

# Predicate body: Run All returned, no prompt shows [*], the kernel and the
# status bar say idle.
RUN_ALL_DONE = FIND_PANEL + """
const p = panel(name);
const state = window.__multioptRunAll;
const running = Array.from(p.node.querySelectorAll('.jp-InputPrompt')).some(n => n.textContent.includes('*'));
const statusBar = document.querySelector('#jp-main-statusbar');
return !!state && state.done && !running && kernelIdle(p) && !!statusBar && statusBar.textContent.includes('Idle');
"""

CELL_STATES = """(name) => {%s
  const cells = panel(name).content.model.cells;
  const states = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type === 'code') states.push({index: i, count: cell.executionCount});
  }
  return states;
}""" % FIND_PANEL

OUTPUT_PROBLEMS = """(name) => {%s
  const cells = panel(name).content.model.cells;
  const found = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (let j = 0; j < cell.outputs.length; j++) {
      const output = cell.outputs.get(j).toJSON();
      const join = (text) => Array.isArray(text) ? text.join('') : String(text);
      if (output.output_type === 'error') {
        const trace = (output.traceback || []).join('\\n');
        found.push({where: `cell ${i}`, kind: 'error', text: `${output.ename}: ${output.evalue}\\n${trace}`});
      } else if (output.output_type === 'stream' && output.name === 'stderr') {
        found.push({where: `cell ${i}`, kind: 'stderr', text: join(output.text)});
      }
    }
  }
  return found;
}""" % FIND_PANEL

KERNEL_PROBLEMS = """(name) => {%s
  const path = panel(name).context.path;
  return (window.__multioptKernelProblems || []).filter(item => item.path === path);
}""" % FIND_PANEL

# Makes the last cell active in command mode with the keyboard focus on the
# notebook, ready for the keys `b` and `Enter`; returns the new cell's index.
PREPARE_NEW_CELL = """(name) => {%s
  const p = panel(name);
  app.shell.activateById(p.id);
  const notebook = p.content;
  notebook.activeCellIndex = notebook.widgets.length - 1;
  notebook.mode = 'command';
  notebook.node.focus();
  return notebook.widgets.length;
}""" % FIND_PANEL
