from ..params import Section


class PrepareModelParams(Section):
    pass


class LLMParams(Section):
    pass
