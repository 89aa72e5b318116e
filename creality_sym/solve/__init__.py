"""Newton's method on generated models, exact and sampled-Hessian (DESIGN section 2.5)."""

from .instance import Instance, load_instance, random_instance
from .newton import Iteration, NewtonResult, newton

__all__ = ["Instance", "Iteration", "NewtonResult", "load_instance", "newton", "random_instance"]
