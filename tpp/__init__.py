"""`tpp`: marked temporal point processes on the condprob core.

Event data (`EventBatch`), models with exact likelihoods (`HomogeneousPoisson`,
`InhomogeneousPoisson`, `Renewal`, `SelfCorrecting`, `Hawkes`), neural models (`tpp.neural`),
metrics (`tpp.metrics`) and ground-truth generators (`omi_processes`). Every model's next-event
law is a kernel history -> (tau, mark) in the core's protocol (`PointProcess.kernel()`).
"""

from tpp.data import EventBatch
from tpp.hawkes import Hawkes
from tpp.kernel import NextEvent, NextEventKernel, history_space
from tpp.neural import ConditionalGenerator, IntensityFree, TimeGivenMark
from tpp.process import PointProcess
from tpp.simple import (
    HomogeneousPoisson,
    InhomogeneousPoisson,
    Renewal,
    SelfCorrecting,
    omi_processes,
    sinusoidal_rate,
)
from tpp.train import train

__all__ = ["ConditionalGenerator", "EventBatch", "Hawkes", "HomogeneousPoisson",
           "InhomogeneousPoisson", "IntensityFree", "NextEvent", "NextEventKernel", "PointProcess",
           "Renewal", "SelfCorrecting", "TimeGivenMark", "history_space", "omi_processes",
           "sinusoidal_rate",
           "train"]
