from ..params import Section


class ValidateParams(Section):
    pass
