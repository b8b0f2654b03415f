"""The recurrent cells, by name: each module is one cell (see ``rnn.py`` for the contract)."""

from . import gru, lstm, rnn

CELLS = {cell.NAME: cell for cell in (rnn, lstm, gru)}


def get(name):
    """The cell called ``name``; ValueError naming the choices otherwise."""
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {name!r}: choose one of {', '.join(CELLS)}") from None


def get_by_layer(layer):
    """The cell whose layer parameters ``layer`` is (a cell's ``Layer`` named tuple)."""
    for cell in CELLS.values():
        if isinstance(layer, cell.Layer):
            return cell
    raise ValueError(f"{type(layer).__name__} is not the parameters of a known cell")
