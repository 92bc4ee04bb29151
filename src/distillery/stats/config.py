from ..params import Section


class StatsParams(Section):
    pass
