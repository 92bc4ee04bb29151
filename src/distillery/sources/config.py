from ..params import Section


class IngestParams(Section):
    pass
