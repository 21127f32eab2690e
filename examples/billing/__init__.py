"""An invoicing job that prices its lines in worker processes.

``invoice_total`` splits an invoice into batches and prices them in a
``ProcessPoolExecutor`` whose workers are started with ``spawn`` (as on macOS
and Windows, and the default for ``ProcessPoolExecutor`` from Python 3.14).
Tax is set once per run with ``pricing.configure``.
"""

from .invoice import Line, invoice_total
from .pricing import configure

__all__ = ["Line", "configure", "invoice_total"]
