"""Models for BFFG: a networkx tree or DAG of the core's kernels.

Tree: the root holds a prior state; each edge parent -> child holds a kernel from the parent's
space to the child's (finite `Kernel`, `LinearGaussian`, `NonlinearGaussian`, `SDEKernel`) and
optionally a linear auxiliary kernel used by the backward filter. DAG: `add_node(v, kernel,
parents=(p1, ..., pk))` gives v one kernel from the product space p1 @ ... @ pk (in that order;
`parents=()` makes v a root with `kernel` as its prior); DAG models hold finite or linear-Gaussian
kernels and may have several roots. Any node may hold an observation (a message: `FiniteMessage`,
`GaussianMessage` or `PointMessage`). `validate` names the node or edge at fault.
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx
import torch

from condprob.bffg.kernels import NonlinearGaussian
from condprob.bffg.messages import FiniteMessage, GaussianMessage, PointMessage
from condprob.bffg.sde import LinearSDE, SDEKernel
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.finite import Kernel, State
from condprob.gaussian import Gaussian, LinearGaussian
from condprob.protocol import Morphism
from condprob.spaces import Space, product

Message = FiniteMessage | GaussianMessage | PointMessage
EDGE_KINDS = (Kernel, LinearGaussian, NonlinearGaussian, SDEKernel)


def same_space(a: Space, b: Space) -> bool:
    """a == b, comparing kinds first (a finite and a Euclidean space are never equal)."""
    return a.is_finite == b.is_finite and a.is_euclidean == b.is_euclidean and a == b


class Model:
    """A tree (or DAG) of kernels with priors at the roots and observations at nodes.

    `graph` is a `networkx.DiGraph`; node attributes `prior` (roots) and `observation`; edge
    attributes `kernel` and `auxiliary`. Build with `add_edge` and `observe`, or wrap a graph.
    A DAG model is built with `add_node`, which stores the node's kernel from the product of its
    parents' spaces and their order in the node attributes `dag_kernel` and `parents`.
    """

    def __init__(self, root: Hashable | None = None, prior: Morphism | None = None,
                 graph: nx.DiGraph | None = None):
        self.graph = nx.DiGraph() if graph is None else graph
        if prior is not None and not isinstance(prior, Morphism):
            raise TypeError(f"the prior of {root!r} must be a kernel (a condprob Morphism), got "
                            f"{type(prior).__name__}")
        if root is not None:
            self.graph.add_node(root, prior=prior)

    # Building ------------------------------------------------------------------------------
    def add_edge(self, parent: Hashable, child: Hashable, kernel: Morphism,
                 auxiliary: Morphism | None = None) -> Model:
        """parent -> child through `kernel`; `auxiliary` replaces it in the backward filter."""
        for what, k in (("kernel", kernel), ("auxiliary", auxiliary)):
            if k is not None and not isinstance(k, Morphism):
                raise TypeError(f"the {what} of edge {parent!r} -> {child!r} must be a kernel (a "
                                f"condprob Morphism), got {type(k).__name__}")
        self.graph.add_edge(parent, child, kernel=kernel, auxiliary=auxiliary)
        return self

    def add_node(self, node: Hashable, kernel: Morphism,
                 parents: tuple[Hashable, ...] | list[Hashable] = ()) -> Model:
        """Node with one kernel from the product of its parents' spaces, in the order given
        (the model becomes a DAG model); `parents=()` makes `kernel` the node's prior."""
        parents = tuple(parents)
        if len(set(parents)) != len(parents):
            raise ValidationError(f"node {node!r}: parents {parents} repeat a node")
        if node in parents:
            raise ValidationError(f"node {node!r} cannot be its own parent")
        self.graph.add_node(node, parents=parents, dag_kernel=kernel)
        if not parents:
            self.graph.nodes[node]["prior"] = kernel
        for p in parents:
            self.graph.add_edge(p, node, kernel=None, auxiliary=None)
        return self

    def observe(self, node: Hashable, message: Message) -> Model:
        """Attach an observation (a message; several at one node are fused)."""
        if node not in self.graph:
            raise ValidationError(f"cannot observe unknown node {node!r}")
        if not isinstance(message, FiniteMessage | GaussianMessage | PointMessage):
            raise TypeError(f"the observation of {node!r} must be a message (FiniteMessage."
                            f"observe(label, space), GaussianMessage.observation(...), "
                            f"PointMessage), got {type(message).__name__}")
        old = self.graph.nodes[node].get("observation")
        self.graph.nodes[node]["observation"] = message if old is None else old & message
        return self

    def derive_auxiliaries(self) -> Model:
        """Give every nonlinear edge without an auxiliary its linearisation along the noise-free
        forward run from the prior mean: `NonlinearGaussian.linearise` at the parent's mean, and
        `SDEKernel.linearise_along` the Euler path of the drift. Returns the model."""
        self.validate_structure()
        prior = self.prior()
        if not isinstance(prior, Gaussian):
            raise ValidationError("deriving auxiliaries needs a Gaussian prior at the root")
        means = {self.root: prior.mean}
        for u, v in self.edges_top_down():
            k, x = self.kernel(u, v), means[u][None]
            if isinstance(k, NonlinearGaussian):
                means[v] = k.mean(x)[0]
                if self.auxiliary(u, v) is None:
                    self.graph.edges[u, v]["auxiliary"] = k.linearise(means[u])
            elif isinstance(k, SDEKernel):
                zero = torch.zeros(1, k.grid.shape[0] - 1, k.noise_dim, dtype=torch.float64)
                path = k.sample(x, noise=zero, path=True)[0]
                means[v] = path[-1]
                if self.auxiliary(u, v) is None and not isinstance(k, LinearSDE):
                    self.graph.edges[u, v]["auxiliary"] = k.linearise_along(path)
            elif isinstance(k, LinearGaussian):
                means[v] = k.matrix @ means[u] + k.offset
            else:
                raise ValidationError(f"edge {u!r} -> {v!r}: cannot derive auxiliaries through "
                                      f"{type(k).__name__}")
        return self

    # Queries -------------------------------------------------------------------------------
    @property
    def is_dag(self) -> bool:
        """True once a node was added with `add_node` (several parents or roots allowed)."""
        return any("parents" in d for _, d in self.graph.nodes(data=True))

    def node_kernel(self, node: Hashable) -> tuple[Morphism, tuple[Hashable, ...]]:
        """The kernel into a node of a DAG model and its parents in the kernel's order (a root:
        its prior and ())."""
        data = self.graph.nodes[node]
        if "parents" in data:
            return data["dag_kernel"], data["parents"]
        parents = tuple(self.graph.predecessors(node))
        if not parents:
            return data.get("prior"), ()
        return (self.kernel(parents[0], node) if len(parents) == 1 else None), parents

    @property
    def root(self) -> Hashable:
        roots = [v for v in self.graph if self.graph.in_degree(v) == 0]
        if len(roots) != 1:
            raise ValidationError(f"a model needs exactly one root; found {roots}")
        return roots[0]

    def prior(self) -> Morphism:
        """The prior state at the root."""
        return self.graph.nodes[self.root].get("prior")

    def kernel(self, parent: Hashable, child: Hashable) -> Morphism:
        """The kernel on the edge parent -> child."""
        return self.graph.edges[parent, child]["kernel"]

    def auxiliary(self, parent: Hashable, child: Hashable) -> Morphism | None:
        """The auxiliary kernel of the edge (None: the backward filter uses the kernel itself)."""
        return self.graph.edges[parent, child].get("auxiliary")

    def observation(self, node: Hashable) -> Message | None:
        """The (fused) observation message at a node, or None."""
        return self.graph.nodes[node].get("observation")

    def children(self, node: Hashable) -> list[Hashable]:
        """The node's children."""
        return list(self.graph.successors(node))

    def space(self, node: Hashable) -> Space:
        """The node's space: the prior's at the root, else the incoming kernel's codomain."""
        if "parents" in self.graph.nodes[node]:
            return self.graph.nodes[node]["dag_kernel"].cod
        if self.graph.in_degree(node) == 0:
            return self.prior().cod
        parent = next(iter(self.graph.predecessors(node)))
        return self.kernel(parent, node).cod

    def edges_top_down(self) -> list[tuple[Hashable, Hashable]]:
        """Edges in breadth-first order from the root (parents before children)."""
        return list(nx.bfs_edges(self.graph, self.root))

    # Validation ----------------------------------------------------------------------------
    def validate_structure(self) -> None:
        """Check that the graph is a tree with a prior at its root and a kernel on every edge."""
        g = self.graph
        if g.number_of_nodes() == 0:
            raise ValidationError("the model is empty")
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise ValidationError(f"the model has a cycle: {cycle}")
        root = self.root
        prior = g.nodes[root].get("prior")
        if not isinstance(prior, State | Gaussian):
            raise ValidationError(f"root {root!r} needs a prior state (finite State or Gaussian), "
                                  f"got {type(prior).__name__}")
        for v in g:
            if g.in_degree(v) > 1:
                raise ValidationError(f"node {v!r} has several parents {list(g.predecessors(v))}; "
                                      "give their joint kernel with add_node(node, kernel, "
                                      "parents=(...))")
        for u, v, data in g.edges(data=True):
            k = data.get("kernel")
            if k is None:
                raise ValidationError(f"edge {u!r} -> {v!r} has no kernel")
            if not isinstance(k, EDGE_KINDS):
                raise ValidationError(f"edge {u!r} -> {v!r}: unsupported kernel kind "
                                      f"{type(k).__name__}")

    def validate(self) -> None:
        """Raise ValidationError / SpaceMismatchError naming the first inconsistent node or edge."""
        if self.is_dag:
            self.validate_dag()
            return
        self.validate_structure()
        g = self.graph
        for u, v, data in g.edges(data=True):
            k = data["kernel"]
            if not same_space(k.dom, self.space(u)):
                raise SpaceMismatchError(f"kernel on edge {u!r} -> {v!r}", self.space(u), k.dom)
            self._validate_auxiliary(u, v, k, data.get("auxiliary"))
        for v in g:
            obs = g.nodes[v].get("observation")
            if obs is not None and not same_space(obs.space, self.space(v)):
                raise SpaceMismatchError(f"observation at node {v!r}", self.space(v), obs.space)

    def _validate_auxiliary(self, u: Hashable, v: Hashable, k: Morphism,
                            aux: Morphism | None) -> None:
        where = f"edge {u!r} -> {v!r}"
        if aux is None:
            if isinstance(k, NonlinearGaussian):
                raise ValidationError(f"{where}: a nonlinear kernel needs an auxiliary "
                                      "LinearGaussian (e.g. kernel.linearise(x0))")
            if isinstance(k, SDEKernel) and not isinstance(k, LinearSDE):
                raise ValidationError(f"{where}: a nonlinear SDE needs an auxiliary LinearSDE "
                                      "(e.g. kernel.linearise(t, x))")
            return
        want = LinearSDE if isinstance(k, SDEKernel) else type(k) if isinstance(k, Kernel) \
            else LinearGaussian
        if not isinstance(aux, want):
            raise ValidationError(f"{where}: auxiliary must be a {want.__name__}, "
                                  f"got {type(aux).__name__}")
        if not (same_space(aux.dom, k.dom) and same_space(aux.cod, k.cod)):
            raise SpaceMismatchError(f"auxiliary on {where}", (k.dom, k.cod), (aux.dom, aux.cod))
        if isinstance(k, SDEKernel) and (k.grid.shape != aux.grid.shape
                                            or not torch.equal(k.grid, aux.grid)):
            raise ValidationError(f"{where}: the auxiliary SDE must use the kernel's time grid")


    def validate_dag(self) -> None:
        """Checks of a DAG model: acyclic, a prior at every root, one finite or linear-Gaussian
        kernel per node whose domain is the product of its parents' spaces in the stated order,
        one kind of space throughout, observations on the nodes' spaces."""
        g = self.graph
        if not nx.is_directed_acyclic_graph(g):
            raise ValidationError(f"the model has a cycle: {nx.find_cycle(g)}")
        finite = set()
        for v in nx.topological_sort(g):
            kernel, parents = self.node_kernel(v)
            preds = list(g.predecessors(v))
            if set(parents) != set(preds):
                raise ValidationError(f"node {v!r}: parents {list(parents)} given with its kernel "
                                      f"do not match its incoming edges from {preds}")
            if kernel is None:
                what = f"root {v!r} needs a prior" if not parents else \
                    f"node {v!r} has no kernel for its parents {parents}" \
                    if "parents" in g.nodes[v] else \
                    f"node {v!r} has several parents {preds}; give their joint kernel with " \
                    "add_node(node, kernel, parents=(...))"
                raise ValidationError(what)
            if not parents and not isinstance(kernel, State | Gaussian):
                raise ValidationError(f"root {v!r} needs a prior state (finite State or "
                                      f"Gaussian), got {type(kernel).__name__}")
            if not isinstance(kernel, Kernel | LinearGaussian):
                raise ValidationError(f"node {v!r}: unsupported kernel kind "
                                      f"{type(kernel).__name__} (DAG models take finite Kernel or "
                                      "LinearGaussian)")
            if len(preds) == 1 and "parents" not in g.nodes[v] and \
                    self.auxiliary(preds[0], v) is not None:
                raise ValidationError(f"edge {preds[0]!r} -> {v!r}: DAG models are exact and take "
                                      "no auxiliary kernels")
            if isinstance(kernel, Kernel) and kernel.batch_shape:
                raise ValidationError(f"node {v!r}: batched kernels are not supported in DAG "
                                      "models")
            if parents:
                want = product(*(self.space(p) for p in parents))
                if not same_space(kernel.dom, want):
                    raise SpaceMismatchError(f"kernel of node {v!r} from its parents "
                                             f"{list(parents)} (in this order)", want, kernel.dom)
            finite.add(isinstance(kernel, Kernel))
            obs = self.observation(v)
            if obs is not None and not same_space(obs.space, self.space(v)):
                raise SpaceMismatchError(f"observation at node {v!r}", self.space(v), obs.space)
        if len(finite) > 1:
            raise ValidationError("a DAG model is either all finite or all linear-Gaussian")
