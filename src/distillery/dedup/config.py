from ..params import Section


class DedupParams(Section):
    pass
