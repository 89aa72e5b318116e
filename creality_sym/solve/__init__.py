"""Newton's method on generated models: exact Hessian, sampled Hessian, sketch-preconditioned CG."""

from .instance import Instance, load_instance, random_instance
from .newton import newton
from .result import Iteration, NewtonResult

__all__ = ["Instance", "Iteration", "NewtonResult", "load_instance", "newton", "random_instance"]
