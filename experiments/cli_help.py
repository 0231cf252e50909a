"""Examples shown by ``bubblegym --help`` and each subcommand's ``--help`` (argparse epilogs)."""

from __future__ import annotations

MAIN_EXAMPLES = """\
examples:
  bubblegym list                              presets, agents (key parameters) and scenarios
  bubblegym list agents linucb                every parameter of one agent, with range and meaning
  bubblegym simulate --preset filter_bubble   a random policy on one world, summarised
  bubblegym run default                       run a shipped scenario, write runs/default/report.html
  bubblegym run my.yaml --seeds 3 --workers 2 your own scenario file, 3 seeds, 2 processes
  bubblegym report runs/default               rewrite a run's figures and report
  bubblegym compare runs/a runs/b             B - A on the arms two runs share
  bubblegym abtest default --arms random,linucb --users 2048   a simulated A/B test with power
  bubblegym vet linucb:alpha=0.5              a launch verdict over the vetting suite (exit 0/1/2)

`bubblegym COMMAND --help` shows each command's options and examples.
Docs: docs/index.md (scenario files: docs/scenarios.md; agents: docs/agents.md)."""

EXAMPLES: dict[str, str] = {
    "simulate": """\
examples:
  bubblegym simulate                                    the default world, 1024 users x 200 steps
  bubblegym simulate --preset boredom --users 256 --steps 50 --seed 1""",
    "run": """\
examples:
  bubblegym run default                           a shipped scenario by name (bubblegym list scenarios)
  bubblegym run scenarios/filter_bubble.yaml      a scenario file (reference: docs/scenarios.md)
  bubblegym run default --seeds 3 --out runs/try  fewer seeds, another folder
  bubblegym run default --backend ray             tasks on a Ray cluster (pip install bubblegym[ray])
  bubblegym run default                           again after Ctrl-C: finished tasks are kept (resume)""",
    "report": """\
examples:
  bubblegym report runs/default                      figures, report.md and report.html of a run
  bubblegym report runs/default --baseline static    paired differences against the 'static' arm""",
    "compare": """\
examples:
  bubblegym compare runs/before runs/after
  bubblegym compare runs/before runs/after --metrics reward_per_user_step,ctr,regret""",
    "list": """\
examples:
  bubblegym list                      everything: presets, agents with key parameters, scenarios
  bubblegym list agents               the agents only
  bubblegym list agents vw_squarecb   every parameter of one agent: default, allowed values, meaning
  bubblegym list presets
  bubblegym list scenarios""",
    "vet": """\
examples:
  bubblegym vet linucb:alpha=0.5                                   a registry spec against the shipped suite
  bubblegym vet model.bgagent --suite scenarios/vetting --seeds 10  a saved agent file, 10 seeds
  bubblegym vet mypkg.policies:TopTopic --baseline popularity --out runs/vet-top  your own class""",
    "abtest": """\
examples:
  bubblegym abtest default --arms random,linucb --users 2048          one simulated A/B test, power table
  bubblegym abtest churn --arms linucb:alpha=0.5,linucb:alpha=2 --users 1024 --seeds 20 --mde 0.02
  bubblegym abtest default --arms linucb --aa --users 1024 --seeds 50  an A/A test: false-positive rate
  bubblegym abtest default --arms random,linucb --users 2048 --cv 1.2  your own per-user CV for the sizes""",
}
"""Subcommand -> the examples of its ``--help``."""
