from ..params import Section


class ExportParams(Section):
    pass
