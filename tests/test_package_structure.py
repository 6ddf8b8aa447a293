"""The package's import graph: imports only go down the data flow, libraries hold no
hidden gin state, and evaluation and export stand apart from the trainer.

Read from the source with `ast`, so it sees every import, wherever it is written.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "ssgan_tf"


def _modules():
  """{dotted module name: parsed AST} of every file of the package."""
  modules = {}
  for folder, _, names in os.walk(os.path.join(ROOT, PACKAGE)):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        dotted = dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted
        with open(path) as f:
          modules[dotted] = ast.parse(f.read(), path)
  return modules


def _imports(tree, modules):
  """The package modules that `tree` imports (`from a import b` may name a module b)."""
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names if alias.name in modules)
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
      for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        found.add(submodule if submodule in modules else node.module)
  return found


@pytest.fixture(scope="module")
def graph():
  modules = _modules()
  return {name: _imports(tree, modules) for name, tree in modules.items()}, modules


def _reachable(graph, start):
  seen, stack = set(), [start]
  while stack:
    for target in graph[stack.pop()]:
      if target not in seen:
        seen.add(target)
        stack.append(target)
  return seen


def test_the_graph_is_read_correctly(graph):
  edges, _ = graph
  assert {"ssgan_tf.train_lib", "ssgan_tf.callbacks"} <= edges["ssgan_tf.main"] | _reachable(
      edges, "ssgan_tf.main")
  assert "ssgan_tf.evaluation.tfgan" in edges["ssgan_tf.evaluation.metrics"]


def test_evaluation_and_export_do_not_import_the_trainer(graph):
  edges, _ = graph
  for name in edges:
    if name == "ssgan_tf.export_lib" or name.startswith("ssgan_tf.evaluation"):
      reached = _reachable(edges, name)
      assert not reached & {"ssgan_tf.train_lib", "ssgan_tf.callbacks"}, (name, reached)


def test_no_library_module_imports_main(graph):
  edges, _ = graph
  assert [name for name, targets in edges.items() if "ssgan_tf.main" in targets] == []


def test_imports_have_no_cycles(graph):
  edges, _ = graph
  assert [name for name in edges if name in _reachable(edges, name)] == []


# The program, where flags and gin files meet (eval/probe read back which dataset the
# user's gin files bind): it may ask gin; the libraries it calls take arguments.
PROGRAM = f"{PACKAGE}.main"


def test_no_library_module_clears_or_queries_the_global_gin_config(graph):
  _, modules = graph
  calls = []
  for name, tree in modules.items():
    if name == PROGRAM:
      continue
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id == "gin" and node.attr in ("clear_config", "query_parameter")):
        calls.append(f"{name}:{node.lineno} gin.{node.attr}")
  assert calls == []
