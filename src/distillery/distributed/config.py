from ..params import Section


class EngineParams(Section):
    pass
