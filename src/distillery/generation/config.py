from ..params import Section


class DistillParams(Section):
    pass


class SynthesizeParams(Section):
    pass


class PreferencesParams(Section):
    pass


class ScoreParams(Section):
    pass
